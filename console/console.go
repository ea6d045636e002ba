// Package console is tollgate's web console: hand-written HTML, JavaScript
// and CSS embedded in the binary (no build step, nothing from a CDN),
// served by the admin API listener at / (the page) and /console/ (its
// assets). The console has no access of its own: the browser keeps the
// operator's API token in sessionStorage and every action is a call of
// the REST API under /v1 with that token, so the token's scope decides
// what the console may do (controls it may not use are disabled).
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// Files are the console's assets (index.html, app.js, style.css).
func Files() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err)
	}
	return sub
}

// contentSecurityPolicy allows the console's own assets and API only: no
// inline script, no inline style attribute, no other origin.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// Handler serves GET / (index.html) and GET /console/<asset>; anything
// else is a 404.
func Handler() http.Handler {
	files := Files()
	fsrv := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		switch {
		case r.URL.Path == "/":
			data, err := fs.ReadFile(files, "index.html")
			if err != nil {
				http.Error(w, "console: index.html missing", http.StatusInternalServerError)
				return
			}
			h.Set("Content-Type", "text/html; charset=utf-8")
			w.Write(data)
		case strings.HasPrefix(r.URL.Path, "/console/"):
			name := path.Clean(strings.TrimPrefix(r.URL.Path, "/console/"))
			if name == "." || name == "index.html" || strings.HasPrefix(name, "..") {
				http.NotFound(w, r)
				return
			}
			if _, err := fs.Stat(files, name); err != nil {
				http.NotFound(w, r)
				return
			}
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/" + name
			fsrv.ServeHTTP(w, r2)
		default:
			http.NotFound(w, r)
		}
	})
}
