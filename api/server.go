package api

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"
)

// maxBodyBytes bounds a request body (413 beyond).
const maxBodyBytes = 1 << 20

// ServerOptions configure NewServer.
type ServerOptions struct {
	// Logger receives internal errors (level error) and one line per
	// request (level debug). The zero Logger discards everything.
	Logger zerolog.Logger
	// Events feeds GET /v1/events (server-sent events); nil: that route
	// answers 503.
	Events EventSource
	// Console, when set, serves the web console: GET / and everything
	// under /console/ (its assets). It is outside the route table and the
	// OpenAPI document: a static client of the API, with no access of its
	// own.
	Console http.Handler
}

// server serves the admin API.
type server struct {
	b      Backend
	m      *Metrics
	log    zerolog.Logger
	events EventSource
	mux    *http.ServeMux
	doc    []byte // the OpenAPI document
	// patterns are every pattern registered on mux, in order.
	patterns []string
}

// NewServer returns the admin API handler: the routes of the route table
// (JSON under /v1 with bearer tokens, /healthz, /readyz, /metrics and
// /v1/openapi.json), JSON 404s for unknown paths and 405s for unknown
// methods of known paths. m may be nil (then /metrics serves an empty
// registry); when m has no active-calls source yet, NewServer sets it to
// b.ActiveByTenant.
func NewServer(b Backend, m *Metrics, opts ServerOptions) http.Handler {
	s := &server{b: b, m: m, log: opts.Logger, events: opts.Events, mux: http.NewServeMux(), doc: openAPIDocument()}
	if m != nil && !m.hasActiveSource() {
		m.SetActiveSource(b.ActiveByTenant)
	}
	methods := map[string][]string{}
	var paths []string
	for i := range routes {
		rt := &routes[i]
		s.handle(rt.method+" "+rt.path, s.wrap(rt))
		if _, ok := methods[rt.path]; !ok {
			paths = append(paths, rt.path)
		}
		methods[rt.path] = append(methods[rt.path], rt.method)
	}
	// A known path with another method: 405 (method-less patterns are
	// less specific than the method ones).
	for _, p := range paths {
		allow := methods[p]
		if slices.Contains(allow, http.MethodGet) {
			allow = append(allow, http.MethodHead)
		}
		s.handle(p, s.methodNotAllowed(strings.Join(allow, ", ")))
	}
	if opts.Console != nil {
		// Not s.handle: these patterns are not API operations.
		s.mux.Handle("GET /{$}", opts.Console)
		s.mux.Handle("GET /console/", opts.Console)
	}
	s.handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, &statusError{status: http.StatusNotFound, code: "not_found", msg: fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)})
	}))
	return s
}

func (s *server) handle(pattern string, h http.Handler) {
	s.patterns = append(s.patterns, pattern)
	s.mux.Handle(pattern, h)
}

// ServeHTTP implements http.Handler.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

func (s *server) methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		s.writeError(w, r, &statusError{status: http.StatusMethodNotAllowed, code: "method_not_allowed",
			msg: fmt.Sprintf("method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow)})
	})
}

// statusError is an error with its own status and code (not a Backend error).
type statusError struct {
	status int
	code   string
	field  string
	msg    string
}

// Error implements error.
func (e *statusError) Error() string { return e.msg }

// statusWriter records the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

// WriteHeader records the first status.
func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200.
func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// wrap serves one route: authentication and scope, query parameters, the
// handler, the JSON answer or error, panics and the request log.
func (s *server) wrap(rt *route) http.Handler {
	known := map[string]bool{}
	for _, q := range rt.query {
		known[q.name] = true
	}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w := &statusWriter{ResponseWriter: rw}
		var p Principal
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error().Str("method", r.Method).Str("path", r.URL.Path).Str("panic", fmt.Sprint(v)).
					Bytes("stack", debug.Stack()).Msg("api: handler panic")
				if w.status == 0 {
					s.writeError(w, r, &statusError{status: http.StatusInternalServerError, code: "internal", msg: "internal error"})
				}
			}
			s.log.Debug().Str("method", r.Method).Str("path", r.URL.Path).Int("status", w.status).
				Str("token", p.Name).Dur("took", time.Since(start)).Msg("api request")
		}()
		if rt.scope != "" {
			var err error
			if p, err = s.authenticate(r, rt.scope); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		if rt.raw != nil {
			rt.raw(s).ServeHTTP(w, r)
			return
		}
		for name := range r.URL.Query() {
			if rt.scope != "" && !known[name] {
				s.writeError(w, r, &FieldError{Field: name, Message: fmt.Sprintf("unknown query parameter %q", name)})
				return
			}
		}
		status, body, err := rt.handle(s, w, r, p)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if status == http.StatusNoContent || body == nil {
			w.WriteHeader(status)
			return
		}
		writeJSON(w, status, body)
	})
}

// authenticate checks the bearer token and its scope against need.
func (s *server) authenticate(r *http.Request, need Scope) (Principal, error) {
	h := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if h == "" || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return Principal{}, &statusError{status: http.StatusUnauthorized, code: "unauthorized", msg: "missing bearer token (Authorization: Bearer <token>)"}
	}
	p, ok := s.b.Authenticate(tok)
	if !ok {
		return Principal{}, &statusError{status: http.StatusUnauthorized, code: "unauthorized", msg: "invalid token"}
	}
	if !scopeAllows(p.Scope, need) {
		names := make([]string, 0, 4)
		for _, sc := range scopesGranted(need) {
			names = append(names, string(sc))
		}
		return p, &statusError{status: http.StatusForbidden, code: "forbidden",
			msg: fmt.Sprintf("token %q has scope %s; this operation needs %s", p.Name, p.Scope, strings.Join(names, " or "))}
	}
	return p, nil
}

// writeError answers err as an ErrorBody: *FieldError 400, ErrNotFound
// 404, ErrConflict 409, ErrNotReady 503, *statusError its own status, any
// other error 500 (logged, not shown).
func (s *server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		he *statusError
		fe *FieldError
		d  ErrorDetail
		st int
	)
	switch {
	case errors.As(err, &he):
		st, d = he.status, ErrorDetail{Code: he.code, Field: he.field, Message: he.msg}
	case errors.As(err, &fe):
		st, d = http.StatusBadRequest, ErrorDetail{Code: "invalid", Field: fe.Field, Message: fe.Message}
	case errors.Is(err, ErrNotFound):
		st, d = http.StatusNotFound, ErrorDetail{Code: "not_found", Message: err.Error()}
	case errors.Is(err, ErrConflict):
		st, d = http.StatusConflict, ErrorDetail{Code: "conflict", Message: err.Error()}
	case errors.Is(err, ErrNotReady):
		st, d = http.StatusServiceUnavailable, ErrorDetail{Code: "not_ready", Message: err.Error()}
	default:
		s.log.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("api: internal error")
		st, d = http.StatusInternalServerError, ErrorDetail{Code: "internal", Message: "internal error"}
	}
	if st == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate"`)
	}
	writeJSON(w, st, ErrorBody{Error: d})
}

// writeJSON writes body as JSON with status.
func writeJSON(w http.ResponseWriter, status int, body any) {
	data, err := json.Marshal(body)
	if err != nil {
		data, _ = json.Marshal(ErrorBody{Error: ErrorDetail{Code: "internal", Message: "internal error: cannot encode the answer"}})
		status = http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}

// metricsHandler serves m's registry (an empty one without metrics).
func metricsHandler(s *server) http.Handler {
	reg := s.m.Registry()
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return h
}

// ---- request bodies ----

// readBody reads the request body (at most maxBodyBytes). An empty body is
// a 400 when required, else nil.
func readBody(r *http.Request, required bool) ([]byte, error) {
	if r.Body == nil {
		r.Body = http.NoBody
	}
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &statusError{status: http.StatusRequestEntityTooLarge, code: "invalid", msg: fmt.Sprintf("request body larger than %d bytes", maxBodyBytes)}
		}
		return nil, &statusError{status: http.StatusBadRequest, code: "invalid", msg: "cannot read the request body: " + err.Error()}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if required {
			return nil, &FieldError{Message: "request body required (JSON)"}
		}
		return nil, nil
	}
	return data, nil
}

// decodeBody strictly decodes the JSON body into v (a pointer): unknown
// fields and wrong types are a *FieldError naming the JSON path. An empty
// body is an error when required, else leaves v alone.
func decodeBody(r *http.Request, v any, required bool) error {
	data, err := readBody(r, required)
	if err != nil || data == nil {
		return err
	}
	return decodeStrict(data, v)
}

// decodeStrict decodes data into v like json.Decoder with
// DisallowUnknownFields, one value only, with errors naming the path.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, err := dec.Token(); err != io.EOF {
			return &FieldError{Message: "unexpected data after the JSON value"}
		}
		return nil
	}
	var se *json.SyntaxError
	if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) {
		return syntaxError(data, err)
	}
	// Find the exact path (with indices) by walking the document.
	var doc any
	gd := json.NewDecoder(bytes.NewReader(data))
	gd.UseNumber()
	if gd.Decode(&doc) == nil {
		if path, msg, ok := locate(doc, reflect.TypeOf(v).Elem(), ""); ok {
			return &FieldError{Field: path, Message: msg}
		}
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return &FieldError{Field: te.Field, Message: fmt.Sprintf("expected %s, got %s", describeType(te.Type), te.Value)}
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if name, ok := strings.CutPrefix(msg, "unknown field "); ok {
		if n, err := strconv.Unquote(name); err == nil {
			return &FieldError{Field: n, Message: msg}
		}
	}
	return &FieldError{Message: msg}
}

// syntaxError describes malformed JSON with its line and column.
func syntaxError(data []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := 1, 1
		for _, c := range data[:min(int(se.Offset), len(data))] {
			if c == '\n' {
				line, col = line+1, 1
			} else {
				col++
			}
		}
		return &FieldError{Message: fmt.Sprintf("malformed JSON at line %d, column %d: %s", line, col, se.Error())}
	}
	return &FieldError{Message: "malformed JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
}

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	numberType          = reflect.TypeFor[json.Number]()
)

// locate finds the first place (keys in sorted order) where doc, a
// generic JSON value decoded with UseNumber, does not fit t: an unknown
// field, a wrong type or a value a custom unmarshaler rejects. It returns
// the JSON path ("roles[0].name"; "" for the whole body) and a message.
func locate(doc any, t reflect.Type, path string) (string, string, bool) {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	if doc == nil { // null fits anything (no-op or nil)
		if t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface && reflect.PointerTo(t).Implements(unmarshalerType) {
			if err := reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON([]byte("null")); err != nil {
				return path, fmt.Sprintf("expected %s, got null", describeType(t)), true
			}
		}
		return "", "", false
	}
	if t.Kind() == reflect.Pointer {
		return locate(doc, t.Elem(), path)
	}
	if t == numberType {
		if _, ok := doc.(json.Number); !ok {
			return path, "expected a number, got " + describeValue(doc), true
		}
		return "", "", false
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		raw, _ := json.Marshal(doc)
		if err := reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON(raw); err != nil {
			return path, err.Error(), true
		}
		return "", "", false
	}
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		s, ok := doc.(string)
		if !ok {
			return path, "expected a string, got " + describeValue(doc), true
		}
		if err := reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return path, err.Error(), true
		}
		return "", "", false
	}
	bad := func() (string, string, bool) {
		return path, fmt.Sprintf("expected %s, got %s", describeType(t), describeValue(doc)), true
	}
	switch t.Kind() {
	case reflect.Interface:
		return "", "", false
	case reflect.Bool:
		if _, ok := doc.(bool); !ok {
			return bad()
		}
	case reflect.String:
		if _, ok := doc.(string); !ok {
			return bad()
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := doc.(json.Number)
		if !ok {
			return bad()
		}
		if _, err := strconv.ParseInt(string(n), 10, t.Bits()); err != nil {
			return bad()
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := doc.(json.Number)
		if !ok {
			return bad()
		}
		if _, err := strconv.ParseUint(string(n), 10, t.Bits()); err != nil {
			return bad()
		}
	case reflect.Float32, reflect.Float64:
		n, ok := doc.(json.Number)
		if !ok {
			return bad()
		}
		if _, err := strconv.ParseFloat(string(n), t.Bits()); err != nil {
			return bad()
		}
	case reflect.Slice, reflect.Array:
		arr, ok := doc.([]any)
		if !ok {
			return bad()
		}
		for i, e := range arr {
			if p, m, ok := locate(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); ok {
				return p, m, true
			}
		}
	case reflect.Map:
		obj, ok := doc.(map[string]any)
		if !ok {
			return bad()
		}
		for _, k := range keysSorted(obj) {
			if p, m, ok := locate(obj[k], t.Elem(), join(k)); ok {
				return p, m, true
			}
		}
	case reflect.Struct:
		obj, ok := doc.(map[string]any)
		if !ok {
			return bad()
		}
		fields := jsonFields(t)
		for _, k := range keysSorted(obj) {
			f, ok := lookupJSONField(fields, k)
			if !ok {
				return join(k), fmt.Sprintf("unknown field %q", k), true
			}
			if p, m, ok := locate(obj[k], f.typ, join(f.name)); ok {
				return p, m, true
			}
		}
	}
	return "", "", false
}

// jsonField is a field of a struct as encoding/json sees it (embedded
// structs flattened).
type jsonField struct {
	name      string
	typ       reflect.Type
	omitEmpty bool
}

// jsonFields lists t's JSON fields in order, embedded structs flattened
// (shallower fields win, as in encoding/json).
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	seen := map[string]bool{}
	var walk func(t reflect.Type, depth int)
	type pending struct {
		t     reflect.Type
		depth int
	}
	var embedded []pending
	walk = func(t reflect.Type, depth int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			ft := f.Type
			if f.Anonymous && name == "" {
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					embedded = append(embedded, pending{ft, depth + 1})
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if seen[name] {
				continue
			}
			seen[name] = true
			out = append(out, jsonField{name: name, typ: f.Type, omitEmpty: strings.Contains(","+opts+",", ",omitempty,")})
		}
	}
	walk(t, 0)
	for len(embedded) > 0 {
		e := embedded[0]
		embedded = embedded[1:]
		walk(e.t, e.depth)
	}
	return out
}

// jsonName is a struct field's JSON name.
func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		return f.Name
	}
	return name
}

// lookupJSONField finds key like encoding/json: exact name, else
// case-insensitive.
func lookupJSONField(fields []jsonField, key string) (jsonField, bool) {
	for _, f := range fields {
		if f.name == key {
			return f, true
		}
	}
	for _, f := range fields {
		if strings.EqualFold(f.name, key) {
			return f, true
		}
	}
	return jsonField{}, false
}

// describeType names the JSON expected for a Go type, for messages.
func describeType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a " + t.String()
}

// describeValue names the kind of a generic JSON value, for messages.
func describeValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number:
		return "the number " + string(x)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func keysSorted[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
