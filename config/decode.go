package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decode decodes the YAML document data onto c. It returns the per-key
// problems (unknown keys, repeated keys, values of the wrong type), after
// which decoding went on, and the key paths they name, separately from an
// error that stops decoding (bad syntax).
//
// The problems are found by walking the document's nodes beside Config's
// type, so each one carries its line and key path from the node itself:
//
//	keyturn.yaml:3: tokens.acess_token_ttl: unknown key
func decode(data []byte, name string, c *Config) ([]error, map[string]bool, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	err := dec.Decode(&root)
	if errors.Is(err, io.EOF) {
		return nil, nil, nil // empty file
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load config: %s: %w", name, err)
	}
	w := &walker{name: name, paths: make(map[string]bool)}
	w.value(&root, reflect.TypeFor[Config](), "")
	var terr *yaml.TypeError
	if err := root.Decode(c); errors.As(err, &terr) {
		if len(w.errs) == 0 { // the walk missed what the decoder saw: say it as is
			for _, msg := range terr.Errors {
				w.errs = append(w.errs, fmt.Errorf("%s: %s", name, msg))
			}
		}
	} else if err != nil {
		return nil, nil, fmt.Errorf("load config: %s: %w", name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		w.errs = append(w.errs, fmt.Errorf("%s: more than one YAML document; want one", name))
	}
	return w.errs, w.paths, nil
}

// walker finds the problems of a YAML document against the Go type it
// decodes into, in the order the decoder meets them, each located by its
// node's line and named by its key path.
type walker struct {
	name  string
	errs  []error
	paths map[string]bool // key paths with a problem: not decoded
}

func (w *walker) report(line int, path, msg string) {
	if path == "" {
		w.errs = append(w.errs, fmt.Errorf("%s:%d: %s", w.name, line, msg))
		return
	}
	w.errs = append(w.errs, fmt.Errorf("%s:%d: %s: %s", w.name, line, path, msg))
	w.paths[path] = true
}

// value checks node n, which decodes into a value of type t at path.
func (w *walker) value(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			w.value(c, t, path)
		}
		return
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.ShortTag() == "!!null" {
		return // leaves the zero value or default
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		w.mapping(n, t, path)
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			w.value(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case t.Kind() == reflect.Struct || t.Kind() == reflect.Slice:
		w.mismatch(n, t, path)
	default:
		var terr *yaml.TypeError
		if errors.As(n.Decode(reflect.New(t).Interface()), &terr) {
			w.mismatch(n, t, path)
		}
	}
}

// mismatch reports a value of the wrong type, in the decoder's words.
func (w *walker) mismatch(n *yaml.Node, t reflect.Type, path string) {
	tag, value := n.ShortTag(), ""
	if tag != "!!seq" && tag != "!!map" {
		value = n.Value
		if len(value) > 10 {
			value = value[:7] + "..."
		}
		value = " `" + value + "`"
	}
	w.report(n.Line, path, fmt.Sprintf("cannot unmarshal %s%s into %s", tag, value, t))
}

// mapping checks a mapping that decodes into struct type t: a repeated key
// stops it, as it stops the decoder; an unknown key is reported and skipped.
func (w *walker) mapping(n *yaml.Node, t reflect.Type, path string) {
	repeated := false
	for i := 0; i < len(n.Content); i += 2 {
		for j := i + 2; j < len(n.Content); j += 2 {
			ki, kj := n.Content[i], n.Content[j]
			if ki.Kind == kj.Kind && ki.Value == kj.Value {
				w.report(kj.Line, join(path, kj.Value), fmt.Sprintf("mapping key %q already defined at line %d", kj.Value, ki.Line))
				repeated = true
			}
		}
	}
	if repeated {
		return
	}
	fields := yamlFields(t)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.ShortTag() == "!!merge") {
			w.merge(v, t, path)
			continue
		}
		f, ok := fields[k.Value]
		if !ok {
			w.report(k.Line, join(path, k.Value), "unknown key")
			continue
		}
		w.value(v, f.Type, join(path, k.Value))
	}
}

// merge checks the value of a merge key ("<<"): a mapping, or a sequence
// of mappings, merged into the mapping that holds it.
func (w *walker) merge(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.SequenceNode {
		for _, c := range n.Content {
			w.value(c, t, path)
		}
		return
	}
	w.value(n, t, path)
}

// yamlFields returns struct type t's fields by the key that sets them.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	fields := make(map[string]reflect.StructField)
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() {
			continue
		}
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if key == "-" {
			continue
		}
		if key == "" {
			key = strings.ToLower(f.Name)
		}
		fields[key] = f
	}
	return fields
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
