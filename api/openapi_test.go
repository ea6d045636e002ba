package api_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/control/controltest"
)

var update = flag.Bool("update", false, "rewrite api/openapi.json from the served document")

func openAPIDoc(t *testing.T, e *env) (map[string]any, []byte) {
	t.Helper()
	w := e.do(t, "GET", "/v1/openapi.json", "", "")
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/openapi.json: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	var doc map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatalf("the document is not valid JSON: %v", err)
	}
	return doc, w.Body.Bytes()
}

var wildcard = regexp.MustCompile(`\{([^}]+)\}`)

// TestOpenAPIDocument: the document covers the route table and the mux,
// declares every path parameter and resolves every $ref.
func TestOpenAPIDocument(t *testing.T) {
	e := newEnv(t)
	doc, _ := openAPIDoc(t, e)
	if doc["openapi"] != "3.1.0" {
		t.Errorf("openapi = %v", doc["openapi"])
	}
	paths, _ := doc["paths"].(map[string]any)
	components, _ := doc["components"].(map[string]any)
	schemas, _ := components["schemas"].(map[string]any)
	if len(paths) == 0 || len(schemas) == 0 {
		t.Fatalf("no paths or schemas")
	}
	if _, ok := components["securitySchemes"].(map[string]any)["bearer"]; !ok {
		t.Error("no bearer security scheme")
	}

	// Every route of the table is an operation, with its parameters.
	ops := map[string]bool{}
	ids := map[string]bool{}
	for _, rt := range api.RouteTable() {
		item, _ := paths[rt.Path].(map[string]any)
		op, ok := item[strings.ToLower(rt.Method)].(map[string]any)
		if !ok {
			t.Errorf("%s %s: not in the document", rt.Method, rt.Path)
			continue
		}
		ops[rt.Method+" "+rt.Path] = true
		id, _ := op["operationId"].(string)
		if id == "" || ids[id] {
			t.Errorf("%s %s: operationId %q missing or duplicate", rt.Method, rt.Path, id)
		}
		ids[id] = true
		declared := map[string]string{}
		params, _ := op["parameters"].([]any)
		for _, p := range params {
			pm := p.(map[string]any)
			declared[pm["name"].(string)] = pm["in"].(string)
			if pm["in"] == "path" && pm["required"] != true {
				t.Errorf("%s %s: path parameter %v not required", rt.Method, rt.Path, pm["name"])
			}
		}
		for _, m := range wildcard.FindAllStringSubmatch(rt.Path, -1) {
			if declared[m[1]] != "path" {
				t.Errorf("%s %s: path parameter {%s} not declared", rt.Method, rt.Path, m[1])
			}
		}
		for _, q := range rt.Query {
			if declared[q] != "query" {
				t.Errorf("%s %s: query parameter %s not declared", rt.Method, rt.Path, q)
			}
		}
		sec, _ := op["security"].([]any)
		if (rt.Scope != "") != (len(sec) > 0) {
			t.Errorf("%s %s: security %v for scope %q", rt.Method, rt.Path, sec, rt.Scope)
		}
		resp, _ := op["responses"].(map[string]any)
		if rt.Scope != "" && (resp["401"] == nil || resp["403"] == nil) {
			t.Errorf("%s %s: 401/403 not documented", rt.Method, rt.Path)
		}
	}
	// Nothing else in the document.
	for path, item := range paths {
		for method := range item.(map[string]any) {
			if !ops[strings.ToUpper(method)+" "+path] {
				t.Errorf("%s %s: in the document, not in the table", method, path)
			}
		}
	}

	// Every $ref resolves.
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				name, ok := strings.CutPrefix(ref, "#/components/schemas/")
				if _, exists := schemas[name]; !ok || !exists {
					t.Errorf("%s: unresolved $ref %q", at, ref)
				}
			}
			for k, e := range x {
				walk(e, at+"/"+k)
			}
		case []any:
			for _, e := range x {
				walk(e, at)
			}
		}
	}
	walk(doc, "#")

	// Walk the registered mux: every method pattern is documented, the
	// method-less ones are the 405 fallbacks of documented paths (and "/").
	for _, p := range api.RegisteredPatterns(e.h) {
		method, path, ok := strings.Cut(p, " ")
		if !ok {
			if _, documented := paths[p]; !documented && p != "/" {
				t.Errorf("fallback pattern %q for an undocumented path", p)
			}
			continue
		}
		if !ops[method+" "+path] {
			t.Errorf("registered %q is not in the document", p)
		}
	}
	// And from the outside: on every documented path, a method the
	// document lacks is a 405; one it has is routed.
	for path, item := range paths {
		concrete := wildcard.ReplaceAllString(path, "x")
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			_, documented := item.(map[string]any)[strings.ToLower(m)]
			w := e.do(t, m, concrete, controltest.AdminToken, "")
			switch {
			case documented && w.Code == 405:
				t.Errorf("%s %s documented but 405", m, path)
			case !documented && w.Code != 405:
				t.Errorf("%s %s: %d, an undocumented handler", m, path, w.Code)
			}
		}
	}
}

// TestOpenAPISchemas spot-checks the reflected schemas.
func TestOpenAPISchemas(t *testing.T) {
	doc, _ := openAPIDoc(t, newEnv(t))
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	prop := func(schema, name string) map[string]any {
		t.Helper()
		s, ok := schemas[schema].(map[string]any)
		if !ok {
			t.Fatalf("no schema %s", schema)
		}
		p, ok := s["properties"].(map[string]any)[name].(map[string]any)
		if !ok {
			t.Fatalf("schema %s has no property %s", schema, name)
		}
		return p
	}
	types := func(p map[string]any) []string {
		var out []string
		switch x := p["type"].(type) {
		case string:
			out = []string{x}
		case []any:
			for _, e := range x {
				out = append(out, e.(string))
			}
		}
		slices.Sort(out)
		return out
	}
	check := func(schema, name string, want ...string) {
		t.Helper()
		slices.Sort(want)
		if got := types(prop(schema, name)); !slices.Equal(got, want) {
			t.Errorf("%s.%s types %v, want %v", schema, name, got, want)
		}
	}
	check("Limits", "max_parallel_calls", "integer", "null")           // *int64
	check("Limits", "monthly_spend_limit", "number", "string", "null") // *Money
	check("Limits", "destinations", "object", "null")                  // map
	check("Rate", "increments", "string", "null")                      // Increments
	check("Rate", "connect_fee", "number", "string")                   // Money
	check("CallView", "started", "string")                             // time.Time
	check("CapUsage", "used", "number")                                // json.Number
	check("CapUsage", "limit", "number", "null")                       // *json.Number
	check("TenantView", "name", "string")                              // embedded configs.Tenant, flattened
	check("NewToken", "scope", "string")                               // embedded TokenView
	check("LimitsMergePatch", "auto_suspend", "boolean", "null")
	check("BlockedView", "ip", "string")
	check("BlockedView", "rate", "number")
	check("BlockedView", "dropped", "integer") // uint64
	check("BlockedView", "until", "string")
	if f := prop("CallView", "started")["format"]; f != "date-time" {
		t.Errorf("time format %v", f)
	}
	if r := prop("AuditEntry", "before"); len(r) != 0 {
		t.Errorf("json.RawMessage schema %v, want {} (any)", r)
	}
	if r := prop("TenantView", "status")["$ref"]; r != "#/components/schemas/TenantStatus" {
		t.Errorf("TenantView.status %v", r)
	}
	if _, ok := schemas["Tenant"].(map[string]any)["properties"].(map[string]any)["status"]; ok {
		t.Error("Tenant has status")
	}
}

// TestOpenAPIGolden keeps api/openapi.json (the document for readers) in
// step with the served one; go test ./api -run OpenAPIGolden -update
// rewrites it.
func TestOpenAPIGolden(t *testing.T) {
	_, served := openAPIDoc(t, newEnv(t))
	var buf bytes.Buffer
	if err := json.Indent(&buf, served, "", "  "); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte('\n')
	const golden = "openapi.json"
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./api -run OpenAPIGolden -update)", err)
	}
	if !bytes.Equal(want, buf.Bytes()) {
		t.Errorf("api/openapi.json is stale: run go test ./api -run OpenAPIGolden -update")
	}
}
