// Package migrations holds Keyturn's database schema as numbered SQL files,
// one directory per dialect, embedded in the binary. Files are append-only:
// a merged migration is never edited, a change is a new number. The
// migrator that applies them lives in storage/sqlstore.
package migrations

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
)

// Dialect directory names.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

// FS holds every migration, under postgres/ and sqlite/.
//
//go:embed postgres/*.sql sqlite/*.sql
var FS embed.FS

// Migration is one numbered SQL file.
type Migration struct {
	Version int    // from the file name: 0001_init.sql is version 1
	Name    string // file name without directory, e.g. "0001_init.sql"
	SQL     string
}

// List returns dialect's migrations sorted by version. Versions must run
// 1, 2, 3, … without gaps or duplicates, so that "current version" means
// "every migration up to it has been applied".
func List(dialect string) ([]Migration, error) {
	switch dialect {
	case Postgres, SQLite:
	default:
		return nil, fmt.Errorf("list migrations: unknown dialect %q", dialect)
	}
	return parse(FS, dialect)
}

// Latest returns the newest version in dialect's migrations.
func Latest(dialect string) (int, error) {
	ms, err := List(dialect)
	if err != nil {
		return 0, err
	}
	if len(ms) == 0 {
		return 0, nil
	}
	return ms[len(ms)-1].Version, nil
}

// fileName is NNNN_name.sql: at least four digits, then a lowercase name.
var fileName = regexp.MustCompile(`^([0-9]{4,})_([a-z0-9_]+)\.sql$`)

func parse(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("list migrations: %s/%s: name is not NNNN_name.sql", dir, e.Name())
		}
		v, err := strconv.Atoi(m[1])
		if err != nil || v < 1 {
			return nil, fmt.Errorf("list migrations: %s/%s: bad version", dir, e.Name())
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("list migrations: %w", err)
		}
		ms = append(ms, Migration{Version: v, Name: e.Name(), SQL: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("list migrations: %s/%s: version %d, want %d (versions must run 1, 2, 3, … without gaps or duplicates)", dir, m.Name, m.Version, i+1)
		}
	}
	return ms, nil
}
