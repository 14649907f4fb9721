package migrations

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestListDialectsAgree(t *testing.T) {
	pg, err := List(Postgres)
	if err != nil {
		t.Fatal(err)
	}
	lite, err := List(SQLite)
	if err != nil {
		t.Fatal(err)
	}
	if len(pg) == 0 {
		t.Fatal("no postgres migrations")
	}
	if len(pg) != len(lite) {
		t.Fatalf("postgres has %d migrations, sqlite %d", len(pg), len(lite))
	}
	for i := range pg {
		if pg[i].Version != i+1 || pg[i].Name != lite[i].Name {
			t.Errorf("migration %d: postgres %d %q, sqlite %d %q", i, pg[i].Version, pg[i].Name, lite[i].Version, lite[i].Name)
		}
		if strings.TrimSpace(pg[i].SQL) == "" || strings.TrimSpace(lite[i].SQL) == "" {
			t.Errorf("migration %s is empty", pg[i].Name)
		}
	}
	latest, err := Latest(SQLite)
	if err != nil || latest != len(lite) {
		t.Errorf("Latest(SQLite) = %d, %v; want %d", latest, err, len(lite))
	}
}

func TestListUnknownDialect(t *testing.T) {
	if _, err := List("mysql"); err == nil {
		t.Error("List(mysql): no error")
	}
}

func TestParse(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	tests := []struct {
		name    string
		files   fstest.MapFS
		want    []int
		wantErr string
	}{
		{"sorted by version", fstest.MapFS{
			"d/0002_b.sql": file("B"),
			"d/0010_j.sql": file("J"),
			"d/0001_a.sql": file("A"),
		}, nil, "version 10, want 3"},
		{"ok", fstest.MapFS{
			"d/0002_b.sql": file("B"),
			"d/0001_a.sql": file("A"),
			"d/0003_c.sql": file("C"),
		}, []int{1, 2, 3}, ""},
		{"bad name", fstest.MapFS{"d/1_a.sql": file("A")}, nil, "not NNNN_name.sql"},
		{"duplicate", fstest.MapFS{
			"d/0001_a.sql": file("A"),
			"d/0001_b.sql": file("B"),
		}, nil, "version 1, want 2"},
		{"zero", fstest.MapFS{"d/0000_a.sql": file("A")}, nil, "bad version"},
		{"missing dir", fstest.MapFS{"e/0001_a.sql": file("A")}, nil, "list migrations"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := parse(tt.files, "d")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, m := range ms {
				got = append(got, m.Version)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("versions %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("versions %v, want %v", got, tt.want)
				}
			}
			if ms[0].SQL != "A" || ms[0].Name != "0001_a.sql" {
				t.Errorf("first = %+v", ms[0])
			}
		})
	}
}
