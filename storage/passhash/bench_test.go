package passhash

import (
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkVerifyAtOnce runs CPUs() argon2id checks at once with Default
// parameters, as a login flood fills the default hash slots, and reports
// hashes per second. Run it with -cpu to see what processors beyond the
// CPUs cost the hashes (BENCHMARKS.md):
//
//	go test -run '^$' -bench VerifyAtOnce -cpu 2,3,4 -count 3 ./storage/passhash/
func BenchmarkVerifyAtOnce(b *testing.B) {
	encoded, err := Hash("correct horse battery staple", Default)
	if err != nil {
		b.Fatal(err)
	}
	var left atomic.Int64
	left.Store(int64(b.N))
	b.ResetTimer()
	var wg sync.WaitGroup
	for range CPUs() {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if ok, err := Verify(encoded, "correct horse battery staple"); !ok || err != nil {
					b.Error("verify failed", err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
}
