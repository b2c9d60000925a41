package playground

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, path string) *http.Response {
	t.Helper()
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	return w.Result()
}

func TestHandler(t *testing.T) {
	for _, tc := range []struct {
		path, contentType string
		code              int
	}{
		{"/", "text/html", http.StatusOK},
		{"/playground/app.js", "text/javascript", http.StatusOK},
		{"/playground/style.css", "text/css", http.StatusOK},
		{"/playground/nope.js", "text/plain", http.StatusNotFound},
		{"/playground/../playground.go", "text/plain", http.StatusNotFound}, // nothing outside static/
	} {
		resp := get(t, tc.path)
		if resp.StatusCode != tc.code || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.contentType) {
			t.Errorf("%s: %d %q, want %d %q", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), tc.code, tc.contentType)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("%s: Content-Security-Policy %q", tc.path, csp)
		}
	}
}

// TestPageAssetsExist checks that every script and stylesheet the page
// loads is served.
func TestPageAssetsExist(t *testing.T) {
	body, err := io.ReadAll(get(t, "/").Body)
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(`(?:src|href)="(/playground/[^"]+)"`).FindAllStringSubmatch(string(body), -1)
	if len(refs) < 2 {
		t.Fatalf("the page loads %d assets, want its script and stylesheet", len(refs))
	}
	for _, m := range refs {
		if resp := get(t, m[1]); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", m[1], resp.StatusCode)
		}
	}
}
