package config

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// keyPaths lists every YAML key of t: nested structs as parent.child,
// slices of structs as parent[].child.
func keyPaths(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		path := prefix + tag
		ft := f.Type
		switch {
		case ft.Kind() == reflect.Struct && ft.PkgPath() != "time":
			out = append(out, keyPaths(ft, path+".")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, path+"[]")
			out = append(out, keyPaths(ft.Elem(), path+"[].")...)
		default:
			out = append(out, path)
		}
	}
	return out
}

// TestREADMEDocumentsEveryKey: the README's configuration reference names
// every key of Config (top-level and nested keys as `a.b` in the table,
// client keys as `key`), and keyturn.example.yaml shows each one.
func TestREADMEDocumentsEveryKey(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../keyturn.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(example, &doc); err != nil {
		t.Fatal(err)
	}
	paths := keyPaths(reflect.TypeOf(Config{}), "")
	if len(paths) < 30 {
		t.Fatalf("only %d keys found: %v", len(paths), paths)
	}
	for _, p := range paths {
		want := "`" + p + "`"
		if rest, ok := strings.CutPrefix(p, "clients[]."); ok {
			want = "`" + rest + "`" // client keys are described in the clients paragraph
		}
		if !strings.Contains(string(readme), want) {
			t.Errorf("README.md does not document %s", want)
		}
		leaf := p[strings.LastIndexAny(p, ".]")+1:]
		alternative := strings.HasPrefix(p, "clients[].") && strings.Contains(string(example), "# "+leaf+":")
		if !exampleHas(doc, strings.Split(p, ".")) && !alternative {
			t.Errorf("keyturn.example.yaml does not show %s", p)
		}
	}
}

// exampleHas reports whether the parsed example has the key path; a client
// key counts if any client sets it. (A client key may instead be shown
// commented out, as an alternative: "# key:".)
func exampleHas(node any, path []string) bool {
	if len(path) == 0 {
		return true
	}
	key, list := strings.CutSuffix(path[0], "[]")
	m, ok := node.(map[string]any)
	if !ok {
		return false
	}
	v, ok := m[key]
	if !ok {
		return false
	}
	if !list {
		return exampleHas(v, path[1:])
	}
	items, _ := v.([]any)
	for _, item := range items {
		if exampleHas(item, path[1:]) {
			return true
		}
	}
	return false
}
