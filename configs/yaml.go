package configs

// YAML: strict decoding, and the positions (line numbers) and readable
// messages of decoding errors.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ErrEmptyDocument is returned by DecodeDocument for a file with no YAML
// document (empty or only comments).
var ErrEmptyDocument = errors.New("configs: empty document")

// Document is a YAML file decoded by DecodeDocument: it knows the line of
// every field path in it.
type Document struct{ idx *index }

// DecodeDocument strictly decodes data, one YAML document in the config
// file's shapes (a whole config, or e.g. only plans: and tenants:), into
// out. Unknown fields, values of the wrong type and fractional integers
// are errors naming the file, the field path and the line, as for the
// config file itself. It applies no defaults and validates nothing else.
func DecodeDocument(name string, data []byte, out any) (*Document, error) {
	idx, err := decodeDocument(name, data, out)
	if err != nil {
		return nil, err
	}
	return &Document{idx: idx}, nil
}

// Line returns the line of the field path in the document, or of its
// nearest enclosing field present (0 if none): for errors that name a
// field, such as the admin API's.
func (d *Document) Line(path string) int { return d.idx.line(path) }

func decodeDocument(name string, data []byte, out any) (*index, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: %w", name, ErrEmptyDocument)
		}
		return nil, fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return nil, fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return nil, fmt.Errorf("%s: line %d: a config file holds exactly one YAML document", name, line)
	}
	idx := newIndex(&root)
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(out); err != nil {
		return nil, idx.decodeError(name, err)
	}
	if err := idx.checkFloats(); err != nil {
		return nil, idx.located(name, err)
	}
	return idx, nil
}

// --- locating decode and validation errors in the YAML source ---

// entry is one mapping key or sequence item of the YAML document.
type entry struct {
	path string
	line int
	key  string // mapping key; "" for a sequence item
	val  *yaml.Node
}

type index struct {
	entries []entry
	byPath  map[string]int // path -> index in entries (first occurrence)
}

func newIndex(root *yaml.Node) *index {
	idx := &index{byPath: map[string]int{}}
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	idx.walk(n, "")
	return idx
}

func (idx *index) add(e entry) {
	if _, ok := idx.byPath[e.path]; !ok {
		idx.byPath[e.path] = len(idx.entries)
	}
	idx.entries = append(idx.entries, e)
}

func (idx *index) walk(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			idx.add(entry{path: p, line: k.Line, key: k.Value, val: v})
			idx.walk(v, p)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			idx.add(entry{path: p, line: v.Line, val: v})
			idx.walk(v, p)
		}
	}
}

// present reports whether path is set to a non-null value in the file.
func (idx *index) present(path string) bool {
	i, ok := idx.byPath[path]
	return ok && idx.entries[i].val.Tag != "!!null"
}

// line returns the line of path or of its nearest ancestor present in the
// file (defaults have no line of their own), 0 if none.
func (idx *index) line(path string) int {
	for path != "" {
		if i, ok := idx.byPath[path]; ok {
			return idx.entries[i].line
		}
		cut := strings.LastIndexAny(path, ".[")
		if cut < 0 {
			break
		}
		path = path[:cut]
	}
	return 0
}

// located formats a validation error with the file name and the line.
func (idx *index) located(name string, err error) error {
	var fe *fieldError
	if errors.As(err, &fe) {
		if l := idx.line(fe.path); l > 0 {
			return fmt.Errorf("%s: %s (line %d)", name, fe, l)
		}
	}
	return fmt.Errorf("%s: %w", name, err)
}

// checkFloats rejects fractional numbers for integer fields, which yaml.v3
// would silently truncate.
func (idx *index) checkFloats() error {
	for _, e := range idx.entries {
		if e.val.Kind != yaml.ScalarNode || e.val.ShortTag() != "!!float" {
			continue
		}
		if t := typeAt(e.path); t != nil && t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64 && t != durationType && t != moneyType {
			return errf(e.path, "expected an integer, got %s", e.val.Value)
		}
	}
	return nil
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	moneyType    = reflect.TypeOf(Money(0))
	columnRe     = regexp.MustCompile(`^column (\d+): (.*)$`)
	lineRe       = regexp.MustCompile(`^line (\d+): (.*)$`)
	notFoundRe   = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	alreadySetRe = regexp.MustCompile(`^field (\S+) already set in type (\S+)$`)
	dupKeyRe     = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
	unmarshalRe  = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.+)$")
)

// decodeError turns a yaml.v3 decode error into one naming the file, the
// field path and the line.
func (idx *index) decodeError(name string, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) || len(te.Errors) == 0 {
		return fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	msg := idx.readable(te.Errors[0])
	if n := len(te.Errors) - 1; n > 0 {
		msg += fmt.Sprintf(" (and %d more decode error%s)", n, plural(n))
	}
	return fmt.Errorf("%s: %s", name, msg)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// readable rewrites one yaml.v3 type error message, e.g.
// "line 12: field foo not found in type configs.SIP" becomes
// `sip.foo: unknown field "foo" (sip accepts: listen, ...) (line 12)`.
func (idx *index) readable(raw string) string {
	m := lineRe.FindStringSubmatch(raw)
	if m == nil {
		return raw
	}
	line, _ := strconv.Atoi(m[1])
	rest := m[2]
	var (
		path string
		msg  = rest
	)
	if sm := columnRe.FindStringSubmatch(rest); sm != nil {
		// From a custom UnmarshalYAML (valueError): the value's position.
		col, _ := strconv.Atoi(sm[1])
		msg = sm[2]
		for _, e := range idx.entries {
			if e.val.Line == line && e.val.Column == col {
				path = e.path
				break
			}
		}
	} else if sm := notFoundRe.FindStringSubmatch(rest); sm != nil {
		path = idx.find(line, func(e entry) bool { return e.key == sm[1] })
		msg = fmt.Sprintf("unknown field %q", sm[1])
		if known := knownFields(sm[2]); len(known) > 0 {
			msg += fmt.Sprintf(" (allowed here: %s)", strings.Join(known, ", "))
		}
	} else if sm := alreadySetRe.FindStringSubmatch(rest); sm != nil {
		path = idx.find(line, func(e entry) bool { return e.key == sm[1] })
		msg = fmt.Sprintf("field %q set twice", sm[1])
	} else if sm := dupKeyRe.FindStringSubmatch(rest); sm != nil {
		path = idx.find(line, func(e entry) bool { return e.key == sm[1] })
		msg = fmt.Sprintf("duplicate key %q (first defined at line %s)", sm[1], sm[2])
	} else if sm := unmarshalRe.FindStringSubmatch(rest); sm != nil {
		tag, val, target := sm[1], strings.TrimSuffix(sm[2], "..."), sm[3]
		var node *yaml.Node
		path = idx.find(line, func(e entry) bool {
			switch tag {
			case "!!seq":
				return e.val.Kind == yaml.SequenceNode
			case "!!map":
				return e.val.Kind == yaml.MappingNode
			}
			return e.val.Kind == yaml.ScalarNode && strings.HasPrefix(e.val.Value, val)
		})
		if i, ok := idx.byPath[path]; ok && path != "" {
			node = idx.entries[i].val
		}
		got := "a " + strings.TrimPrefix(tag, "!!") + " value"
		switch {
		case tag == "!!seq":
			got = "a list"
		case tag == "!!map":
			got = "a mapping"
		case node != nil:
			got = strconv.Quote(node.Value)
		case val != "":
			got = strconv.Quote(sm[2])
		}
		msg = fmt.Sprintf("expected %s, got %s", describeType(target), got)
	}
	if path == "" {
		return fmt.Sprintf("line %d: %s", line, msg)
	}
	return fmt.Sprintf("%s: %s (line %d)", path, msg, line)
}

// find returns the path of the entry on line that matches, "" if none does
// (an error about the document itself).
func (idx *index) find(line int, match func(entry) bool) string {
	for _, e := range idx.entries {
		if e.line == line && match(e) {
			return e.path
		}
	}
	return ""
}

func describeType(t string) string {
	switch {
	case t == "time.Duration":
		return "a duration such as 180s, 1m30s or 4h"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "*int"):
		return "an integer"
	case t == "float64":
		return "a number"
	case t == "string":
		return "a string"
	case t == "bool" || t == "*bool":
		return "true or false"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["), strings.HasPrefix(t, "configs."):
		return "a mapping"
	}
	return t
}

// fieldsByType maps Go type names ("configs.SIP") to the YAML keys they
// accept, for "unknown field" messages.
var fieldsByType = func() map[string][]string {
	out := map[string][]string{}
	var visit func(t reflect.Type)
	visit = func(t reflect.Type) {
		for t.Kind() == reflect.Ptr || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == reflect.TypeOf(time.Time{}) {
			return
		}
		if _, done := out[t.String()]; done {
			return
		}
		out[t.String()] = nil
		var keys []string
		var collect func(t reflect.Type)
		collect = func(t reflect.Type) {
			for i := 0; i < t.NumField(); i++ {
				f := t.Field(i)
				tag := f.Tag.Get("yaml")
				if strings.Contains(tag, "inline") {
					collect(f.Type)
					continue
				}
				name, _, _ := strings.Cut(tag, ",")
				if name == "" {
					name = strings.ToLower(f.Name)
				}
				keys = append(keys, name)
				visit(f.Type)
			}
		}
		collect(t)
		out[t.String()] = keys
	}
	visit(reflect.TypeOf(Config{}))
	return out
}()

func knownFields(typeName string) []string { return fieldsByType[typeName] }

// typeAt resolves a field path ("plans[0].limits.max_parallel_calls") to the
// Go type it decodes into, nil if unknown.
func typeAt(path string) reflect.Type {
	t := reflect.TypeOf(Config{})
	for _, part := range strings.Split(path, ".") {
		name, idxs, _ := strings.Cut(part, "[")
		for t.Kind() == reflect.Ptr {
			t = t.Elem()
		}
		switch t.Kind() {
		case reflect.Struct:
			t = fieldType(t, name)
		case reflect.Map:
			t = t.Elem()
		default:
			return nil
		}
		if t == nil {
			return nil
		}
		for n := strings.Count(idxs, "]"); n > 0; n-- {
			if t.Kind() != reflect.Slice {
				return nil
			}
			t = t.Elem()
		}
	}
	for t.Kind() == reflect.Ptr {
		t = t.Elem()
	}
	return t
}

func fieldType(t reflect.Type, name string) reflect.Type {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if strings.Contains(tag, "inline") {
			if ft := fieldType(f.Type, name); ft != nil {
				return ft
			}
			continue
		}
		if n, _, _ := strings.Cut(tag, ","); n == name {
			return f.Type
		}
	}
	return nil
}
