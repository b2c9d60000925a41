// Package playground is the page recsvc serves at /: pick or type a user,
// see the slate with novel items marked, click and skip items, and watch the
// high-level policy's view of the user move (propensities, the chosen level
// and the level distribution), with why the slate looks as it does; a second
// view shows the running A/B experiment's report. It is plain HTML, CSS and
// JavaScript embedded in the binary: nothing to build, and it talks to the
// service only through the public API (api/openapi.yaml).
package playground

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the page at / and its assets under /playground/.
func Handler() http.Handler {
	assets, err := fs.Sub(static, "static")
	if err != nil { // the embedded tree always has static/
		panic(err)
	}
	files := http.StripPrefix("/playground/", http.FileServerFS(assets))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// The page loads only its own scripts and styles and talks only to
		// this origin; it is never framed.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		if r.URL.Path == "/" {
			http.ServeFileFS(w, r, assets, "index.html")
			return
		}
		files.ServeHTTP(w, r)
	})
}
