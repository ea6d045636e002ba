package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
)

// JSONLeaves returns the leaves of v's JSON encoding by field path
// ("limits.max_parallel_calls", "sources[1]"): numbers as json.Number,
// strings, bools, and nil for null. Empty objects and lists have no
// leaves. A json.RawMessage is taken as the document itself; a value that
// does not encode has no leaves.
func JSONLeaves(v any) map[string]any {
	out := map[string]any{}
	data, err := json.Marshal(v)
	if err != nil {
		return out
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return out
	}
	var walk func(path string, x any)
	walk = func(path string, x any) {
		switch x := x.(type) {
		case map[string]any:
			for k, e := range x {
				if path != "" {
					k = path + "." + k
				}
				walk(k, e)
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		default:
			out[path] = x
		}
	}
	walk("", doc)
	return out
}

// JSONDiff lists the leaves that differ between the JSON of a and b as
// "path: before -> after" lines sorted by path, values written as JSON;
// null and absent are the same.
func JSONDiff(a, b any) []string {
	fa, fb := jsonStrings(a), jsonStrings(b)
	keys := make([]string, 0, len(fa)+len(fb))
	for k := range fa {
		keys = append(keys, k)
	}
	for k := range fb {
		if _, ok := fa[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		va, oka := fa[k]
		vb, okb := fb[k]
		if !oka {
			va = "null"
		}
		if !okb {
			vb = "null"
		}
		if va != vb {
			out = append(out, fmt.Sprintf("%s: %s -> %s", k, va, vb))
		}
	}
	return out
}

// jsonStrings is JSONLeaves without the nulls, each leaf as JSON text.
func jsonStrings(v any) map[string]string {
	out := map[string]string{}
	for k, x := range JSONLeaves(v) {
		if x != nil {
			data, _ := json.Marshal(x)
			out[k] = string(data)
		}
	}
	return out
}
