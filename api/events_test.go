package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/control/controltest"
)

// TestWhoAmI: every scope sees its own name, scope and grants; no token
// is a 401.
func TestWhoAmI(t *testing.T) {
	e := newEnv(t)
	want := map[api.Scope][]api.Scope{
		api.ScopeAdmin:    {api.ScopeAdmin, api.ScopeSettings, api.ScopeBilling, api.ScopeRead},
		api.ScopeSettings: {api.ScopeSettings, api.ScopeRead},
		api.ScopeBilling:  {api.ScopeBilling, api.ScopeRead},
		api.ScopeRead:     {api.ScopeRead},
	}
	for _, sc := range allScopes {
		w := e.do(t, "GET", "/v1/whoami", tokens[sc], "")
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", sc, w.Code, w.Body)
		}
		var got api.WhoAmI
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if got.Scope != sc || got.Name == "" || !slices.Equal(got.Grants, want[sc]) {
			t.Errorf("%s: %+v, want grants %v", sc, got, want[sc])
		}
		// The grants agree with what the server lets the token do.
		for _, need := range allScopes {
			if slices.Contains(got.Grants, need) != api.ScopeAllows(sc, need) {
				t.Errorf("%s: grants %v disagree with scopeAllows for %s", sc, got.Grants, need)
			}
		}
	}
	if w := e.do(t, "GET", "/v1/whoami", "", ""); w.Code != 401 {
		t.Errorf("no token: %d", w.Code)
	}
	if w := e.do(t, "GET", "/v1/whoami", "nope", ""); w.Code != 401 {
		t.Errorf("bad token: %d", w.Code)
	}
}

// fakeSource is an EventSource fed by the test.
type fakeSource struct {
	subscribed chan chan api.Event
	history    time.Duration // what since it expects; 0: none kept
}

func (f *fakeSource) Source() string { return "fake" }

func (f *fakeSource) Subscribe(ctx context.Context, since time.Time) (<-chan api.Event, error) {
	if !since.IsZero() && f.history == 0 {
		return nil, api.ErrNoHistory
	}
	if !since.IsZero() && time.Since(since).Round(time.Minute) != f.history {
		return nil, fmt.Errorf("since %v, want %v ago", since, f.history)
	}
	ch := make(chan api.Event, 16)
	f.subscribed <- ch
	return ch, nil
}

// TestEventsStream: GET /v1/events streams the source's events as SSE,
// filtered by tenant; bad parameters name the field; no source is a 503.
func TestEventsStream(t *testing.T) {
	src := &fakeSource{subscribed: make(chan chan api.Event, 1)}
	h := api.NewServer(controltest.NewEnv(t).Svc, nil, api.ServerOptions{Events: src})
	ts := httptest.NewServer(h)
	defer ts.Close()

	get := func(target, token string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", ts.URL+target, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := get("/v1/events", ""); resp.StatusCode != 401 {
		t.Errorf("no token: %d", resp.StatusCode)
	}
	for _, target := range []string{"/v1/events?tenant=demo&since=1", "/v1/events?since=25h", "/v1/events?since=-1m", "/v1/events?since=15m", "/v1/events?from=1"} {
		resp := get(target, controltest.ReadToken)
		var eb api.ErrorBody
		json.NewDecoder(resp.Body).Decode(&eb)
		resp.Body.Close()
		field := "since"
		if strings.Contains(target, "from") {
			field = "from"
		}
		if resp.StatusCode != 400 || eb.Error.Field != field {
			t.Errorf("%s (the source keeps no history): %d %+v, want 400 naming %s", target, resp.StatusCode, eb, field)
		}
	}

	resp := get("/v1/events?tenant=nope", controltest.ReadToken)
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("unknown tenant: %d", resp.StatusCode)
	}

	resp = get("/v1/events?tenant=demo", controltest.ReadToken)
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var ch chan api.Event
	select {
	case ch = <-src.subscribed:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler did not subscribe")
	}
	ch <- api.Event{ID: "e1", Type: "call.ended", Tenant: "other", Data: []byte(`{"id":"e1"}`)}
	ch <- api.Event{ID: "e2", Type: "call.ended", Tenant: "demo", Data: []byte(`{"id":"e2","tenant":"demo"}`)}
	rd := bufio.NewReader(resp.Body)
	var lines []string
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.TrimRight(line, "\n"))
		if strings.HasPrefix(line, "data: ") {
			break
		}
	}
	got := strings.Join(lines, "|")
	want := ": tollgate events from fake||id: e2|event: call.ended|data: {\"id\":\"e2\",\"tenant\":\"demo\"}"
	if got != want {
		t.Errorf("stream:\n got %q\nwant %q", got, want)
	}

	// A source with history replays from since.
	hist := &fakeSource{subscribed: make(chan chan api.Event, 1), history: 15 * time.Minute}
	hs := httptest.NewServer(api.NewServer(controltest.NewEnv(t).Svc, nil, api.ServerOptions{Events: hist}))
	defer hs.Close()
	req, _ := http.NewRequest("GET", hs.URL+"/v1/events?since=15m", nil)
	req.Header.Set("Authorization", "Bearer "+controltest.ReadToken)
	hr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != 200 {
		t.Errorf("since=15m from a source with history: %d", hr.StatusCode)
	}

	// Without a source: 503.
	e := newEnv(t)
	if w := e.do(t, "GET", "/v1/events", controltest.ReadToken, ""); w.Code != 503 {
		t.Errorf("no source: %d %s", w.Code, w.Body)
	}
}

// TestConsoleMount: with a console handler, GET / and /console/... reach
// it; the API and the JSON 404 are unchanged.
func TestConsoleMount(t *testing.T) {
	console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("console " + r.URL.Path))
	})
	h := api.NewServer(controltest.NewEnv(t).Svc, nil, api.ServerOptions{Console: console})
	for target, want := range map[string]string{
		"/":               "console /",
		"/console/app.js": "console /console/app.js",
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
		if w.Code != 200 || w.Body.String() != want {
			t.Errorf("GET %s: %d %q", target, w.Code, w.Body)
		}
	}
	for target, code := range map[string]int{"/nope": 404, "/v1/plans": 401, "/healthz": 200} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
		if w.Code != code || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: %d %q", target, w.Code, w.Header().Get("Content-Type"))
		}
	}
}
