package studio

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func serve(t *testing.T, method, path string, header http.Header) *http.Response {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/labels", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "api") })
	New().Register(mux)
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	return rec.Result()
}

func TestRoutes(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		status       int
		typ, has     string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8", `<script src="studio/app.js"`},
		{"HEAD", "/", 200, "text/html; charset=utf-8", ""},
		{"GET", "/studio/app.js", 200, "text/javascript; charset=utf-8", "v1/images:generate"},
		{"GET", "/studio/app.css", 200, "text/css; charset=utf-8", ".gallery"},
		{"GET", "/studio/icon.svg", 200, "image/svg+xml", "<svg"},
		{"GET", "/studio/", 302, "", ""},
		{"GET", "/studio/index.html", 404, "", ""},
		{"GET", "/studio/nope.js", 404, "", ""},
		{"GET", "/studio/a/app.js", 404, "", ""},
		{"GET", "/v1/nope", 404, "", ""}, // the page is at exactly /: API typos stay 404
		{"GET", "/v1/labels", 200, "", "api"},
		{"POST", "/", 405, "", ""},
	} {
		resp := serve(t, tc.method, tc.path, nil)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.status || (tc.typ != "" && resp.Header.Get("Content-Type") != tc.typ) || !strings.Contains(string(body), tc.has) {
			t.Errorf("%s %s = %d %q (%d bytes), want %d %q containing %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), tc.status, tc.typ, tc.has)
		}
	}
}

func TestPageHeaders(t *testing.T) {
	resp := serve(t, "GET", "/", nil)
	if got := resp.Header.Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'none'") || !strings.Contains(got, "connect-src 'self'") {
		t.Errorf("CSP %q: the page must be limited to its own origin", got)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no nosniff")
	}
	etag := resp.Header.Get("ETag")
	again := serve(t, "GET", "/", http.Header{"If-None-Match": {etag}})
	if etag == "" || again.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation with ETag %q: %d, want 304", etag, again.StatusCode)
	}
}

// TestNothingFromElsewhere: the page references no other origin (the CSP
// would block it; this says which file did it). The SVG's XML namespace is
// a name, not a fetch.
func TestNothingFromElsewhere(t *testing.T) {
	url := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	for name, a := range New().assets {
		for _, m := range url.FindAllString(string(a.body), -1) {
			if m != "http://www.w3.org" {
				t.Errorf("%s refers to %s", name, m)
			}
		}
		if strings.Contains(string(a.body), "@import") {
			t.Errorf("%s imports a stylesheet", name)
		}
	}
}
