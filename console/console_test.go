package console_test

import (
	"io/fs"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/console"
)

// TestHandler: the page at /, its assets under /console/, 404 for the
// rest, and the security headers on every answer.
func TestHandler(t *testing.T) {
	h := console.Handler()
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		return w
	}
	for path, want := range map[string]struct {
		ctype, contains string
	}{
		"/":                  {"text/html", `<input name="token"`},
		"/console/app.js":    {"text/javascript", "/v1/whoami"},
		"/console/style.css": {"text/css", ".bar"},
	} {
		w := get(path)
		if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), want.ctype) || !strings.Contains(w.Body.String(), want.contains) {
			t.Errorf("GET %s: %d %q, body has %q: %v", path, w.Code, w.Header().Get("Content-Type"), want.contains, strings.Contains(w.Body.String(), want.contains))
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s: CSP %q", path, csp)
		}
		if w.Header().Get("X-Frame-Options") != "DENY" {
			t.Errorf("GET %s: no X-Frame-Options", path)
		}
	}
	for _, path := range []string{"/console/", "/console/nope.js", "/console/../console.go", "/other", "/console/index.html"} {
		if w := get(path); w.Code != 404 {
			t.Errorf("GET %s: %d, want 404", path, w.Code)
		}
	}
}

// TestAssetsSelfContained: the assets load nothing from another origin and
// need no build step (no module imports, no inline handlers).
func TestAssetsSelfContained(t *testing.T) {
	err := fs.WalkDir(console.Files(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(console.Files(), path)
		if err != nil {
			return err
		}
		text := string(data)
		for _, bad := range []string{"http://", "https://", "//cdn", " onclick=", " onload=", "import "} {
			if strings.Contains(strings.ReplaceAll(text, "http://www.w3.org/2000/svg", ""), bad) {
				t.Errorf("%s contains %q", path, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Stat(console.Files(), "index.html"); err != nil {
		t.Fatal(err)
	}
}
