package api_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/tollgate/tollgate/api"
)

// JSONDiff compares leaves by path, null equals absent, values as JSON.
func TestJSONDiff(t *testing.T) {
	a := json.RawMessage(`{"name":"demo","limits":{"max_parallel_calls":10,"auto_suspend":null},"sources":["10.0.0.0/24"]}`)
	b := map[string]any{"name": "demo", "limits": map[string]any{"max_parallel_calls": 20}, "sources": []string{"10.0.0.0/24", "10.0.1.0/24"}}
	want := []string{
		"limits.max_parallel_calls: 10 -> 20",
		`sources[1]: null -> "10.0.1.0/24"`,
	}
	if got := api.JSONDiff(a, b); !reflect.DeepEqual(got, want) {
		t.Fatalf("JSONDiff = %q, want %q", got, want)
	}
	if got := api.JSONDiff(json.RawMessage(`{bad`), a); len(got) != 3 {
		t.Fatalf("diff from an unreadable document = %q, want every leaf of the other", got)
	}
	if leaves := api.JSONLeaves(a); leaves["limits.auto_suspend"] != nil || leaves["limits.max_parallel_calls"] != json.Number("10") {
		t.Fatalf("JSONLeaves = %v", leaves)
	}
}
