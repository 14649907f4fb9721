package memstore_test

import (
	"testing"

	"github.com/keyturn/keyturn/storage"
	"github.com/keyturn/keyturn/storage/memstore"
	"github.com/keyturn/keyturn/storage/storagetest"
)

// TestConformance: the in-memory store keeps the same contract as the
// databases (the benchmarks over it measure a real store's behaviour).
func TestConformance(t *testing.T) {
	storagetest.Run(t, func(*testing.T) storage.Store { return memstore.New() })
}
