package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/tollgate/tollgate/configs"
)

// openAPIDocument is the OpenAPI 3.1 document of the route table, built
// once.
var openAPIDocument = sync.OnceValue(func() []byte {
	data, err := json.MarshalIndent(buildOpenAPI(routes), "", "  ")
	if err != nil {
		panic("api: cannot encode the OpenAPI document: " + err.Error())
	}
	return data
})

// pathParam matches the {name} wildcards of a pattern.
var pathParam = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\}`)

const schemaRef = "#/components/schemas/"

// buildOpenAPI builds the document of rts: every route is an operation,
// every request and response type a component schema generated from its Go
// type's json tags.
func buildOpenAPI(rts []route) map[string]any {
	g := &schemaGen{defs: map[string]any{}, names: map[string]reflect.Type{}}
	errorRef := g.top(reflect.TypeFor[ErrorBody]())
	paths := map[string]any{}
	tags := []any{}
	seenTag := map[string]bool{}
	for _, rt := range rts {
		if !seenTag[rt.tag] {
			seenTag[rt.tag] = true
			tags = append(tags, map[string]any{"name": rt.tag})
		}
		op := map[string]any{
			"operationId": rt.id,
			"summary":     rt.summary,
			"tags":        []string{rt.tag},
		}
		params := []any{}
		for _, m := range pathParam.FindAllStringSubmatch(rt.path, -1) {
			params = append(params, map[string]any{
				"name": m[1], "in": "path", "required": true,
				"schema": map[string]any{"type": "string"},
			})
		}
		for _, q := range rt.query {
			params = append(params, map[string]any{
				"name": q.name, "in": "query", "required": false,
				"description": q.desc, "schema": q.schema,
			})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if rt.request != nil {
			ct := rt.contentType
			if ct == "" {
				ct = "application/json"
			}
			content := map[string]any{ct: map[string]any{"schema": g.top(rt.request)}}
			if ct != "application/json" {
				content["application/json"] = map[string]any{"schema": g.top(rt.request)}
			}
			op["requestBody"] = map[string]any{"required": !rt.bodyOptional, "content": content}
		}
		statuses := append([]int(nil), rt.statuses...)
		if rt.scope != "" {
			statuses = append(statuses, http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden)
			op["security"] = []any{map[string]any{"bearer": []string{}}}
			scopes := []string{}
			for _, s := range scopesGranted(rt.scope) {
				scopes = append(scopes, string(s))
			}
			op["x-scopes"] = scopes
		} else {
			op["security"] = []any{}
		}
		if rt.request != nil {
			statuses = append(statuses, http.StatusBadRequest, http.StatusRequestEntityTooLarge)
		}
		statuses = append(statuses, http.StatusInternalServerError)
		responses := map[string]any{}
		for _, st := range statuses {
			resp := map[string]any{"description": http.StatusText(st)}
			switch {
			case st == http.StatusNoContent:
			case st >= 200 && st < 300 && rt.responseType != "":
				sch := map[string]any{"type": "string"}
				if rt.responseType == "application/json" {
					sch = map[string]any{"type": "object"}
				}
				resp["content"] = map[string]any{rt.responseType: map[string]any{"schema": sch}}
			case st >= 200 && st < 300 && rt.response != nil:
				resp["content"] = map[string]any{"application/json": map[string]any{"schema": g.top(rt.response)}}
			case st >= 400:
				resp["content"] = map[string]any{"application/json": map[string]any{"schema": errorRef}}
			}
			responses[strconv.Itoa(st)] = resp
		}
		op["responses"] = responses
		item, _ := paths[rt.path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[rt.path] = item
		}
		item[strings.ToLower(rt.method)] = op
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "tollgate admin API",
			"version": "1.0.0",
			"description": "Admin API of the tollgate SIP call-admission gateway. " +
				"Every /v1 route but /v1/openapi.json needs `Authorization: Bearer <token>`; " +
				"the x-scopes of an operation lists the token scopes allowed " +
				"(admin ⊇ settings ⊇ read, billing ⊇ read plus the audit log). " +
				"Errors are {\"error\":{\"code\",\"field\",\"message\"}}: unauthorized 401, forbidden 403, " +
				"not_found 404, invalid 400 (field: JSON path in the body, or the query parameter), " +
				"conflict 409, not_ready 503, internal 500, method_not_allowed 405.",
		},
		"tags":  tags,
		"paths": paths,
		"components": map[string]any{
			"schemas": g.defs,
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer", "description": "An API token (see /v1/tokens)."},
			},
		},
	}
}

// schemaGen generates JSON Schemas (2020-12, as OpenAPI 3.1) from Go types.
type schemaGen struct {
	defs  map[string]any          // component schemas by name
	names map[string]reflect.Type // the type of each component name
}

// top is the schema of a request or response body: like schema, but a
// top-level list is never null.
func (g *schemaGen) top(t reflect.Type) map[string]any {
	if t.Kind() == reflect.Slice {
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	}
	return g.schema(t)
}

var (
	timeType       = reflect.TypeFor[time.Time]()
	durationType   = reflect.TypeFor[time.Duration]()
	moneyType      = reflect.TypeFor[configs.Money]()
	incrementsType = reflect.TypeFor[configs.Increments]()
	rawType        = reflect.TypeFor[json.RawMessage]()
	scopeType      = reflect.TypeFor[Scope]()
	limitsType     = reflect.TypeFor[configs.Limits]()
	patchDocType   = reflect.TypeFor[limitsMergePatch]()
)

// schema returns the schema of t: a $ref for named structs (registered in
// defs), inline otherwise. Pointers, slices and maps are nullable.
func (g *schemaGen) schema(t reflect.Type) map[string]any {
	switch t {
	case timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case durationType:
		return map[string]any{"type": "integer", "description": "nanoseconds"}
	case moneyType:
		return map[string]any{"type": []any{"number", "string"}, "pattern": `^(-1|[0-9]+(\.[0-9]{1,6})?)$`,
			"description": "an exact amount of money (at most 6 decimal places), as a number or a string; -1 unlimited where allowed"}
	case incrementsType:
		return map[string]any{"type": []any{"string", "null"}, "pattern": `^[0-9]+/[0-9]+$`, "examples": []string{"60/60"},
			"description": "billing increments \"initial/subsequent\" in seconds; null: unset (60/60)"}
	case numberType:
		return map[string]any{"type": "number"}
	case rawType:
		return map[string]any{}
	case scopeType:
		return map[string]any{"type": "string", "enum": []string{string(ScopeAdmin), string(ScopeSettings), string(ScopeBilling), string(ScopeRead)}}
	case patchDocType:
		return g.named(t, "LimitsMergePatch", g.mergePatch)
	}
	switch t.Kind() {
	case reflect.Pointer:
		return nullable(g.schema(t.Elem()))
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": []any{"array", "null"}, "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": []any{"object", "null"}, "additionalProperties": g.schema(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		return g.named(t, schemaName(t), g.object)
	}
	panic(fmt.Sprintf("api: no JSON schema for %s", t))
}

// named registers the component name for t (built by build) and returns
// a $ref to it.
func (g *schemaGen) named(t reflect.Type, name string, build func(reflect.Type) map[string]any) map[string]any {
	if prev, ok := g.names[name]; ok {
		if prev != t {
			panic(fmt.Sprintf("api: schema name %s used by %s and %s", name, prev, t))
		}
	} else {
		g.names[name] = t
		g.defs[name] = map[string]any{} // placeholder against recursion
		g.defs[name] = build(t)
	}
	return map[string]any{"$ref": schemaRef + name}
}

// object is the schema of a struct: its JSON fields (embedded structs
// flattened); unknown fields are rejected by the server.
func (g *schemaGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	for _, f := range jsonFields(t) {
		props[f.name] = g.schema(f.typ)
	}
	return map[string]any{"type": "object", "properties": props, "additionalProperties": false}
}

// mergePatch is the schema of a merge patch of configs.Limits: every
// field nullable (null clears the override), destinations per class.
func (g *schemaGen) mergePatch(reflect.Type) map[string]any {
	props := map[string]any{}
	for _, f := range jsonFields(limitsType) {
		if f.typ.Kind() == reflect.Map {
			props[f.name] = map[string]any{"type": []any{"object", "null"},
				"additionalProperties": map[string]any{"type": []any{"boolean", "null"}},
				"description":          "per class: true enables, false disables, null clears the override; null clears them all"}
			continue
		}
		props[f.name] = nullable(g.schema(f.typ))
	}
	return map[string]any{"type": "object", "properties": props, "additionalProperties": false,
		"description": "JSON merge patch (RFC 7396) of a tenant's limit overrides: a value sets the override, null clears it (inherit the plan), an absent field is unchanged."}
}

// nullable makes s also accept null.
func nullable(s map[string]any) map[string]any {
	switch tp := s["type"].(type) {
	case string:
		out := schemaClone(s)
		out["type"] = []any{tp, "null"}
		return out
	case []any:
		for _, x := range tp {
			if x == "null" {
				return s
			}
		}
		out := schemaClone(s)
		out["type"] = append(append([]any{}, tp...), "null")
		return out
	}
	if len(s) == 0 { // any
		return s
	}
	return map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
}

func schemaClone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// schemaName is the component name of a struct type: its Go name, with an
// upper-case first letter.
func schemaName(t reflect.Type) string {
	n := t.Name()
	if n == "" {
		panic(fmt.Sprintf("api: anonymous struct %s has no schema name", t))
	}
	r := []rune(n)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}
