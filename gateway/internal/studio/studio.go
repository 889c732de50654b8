// Package studio is the gateway's web studio: a page, served on the HTTP
// port next to the JSON API, that asks that API for images and shows them
// with their provenance. Its files are plain HTML, CSS and JavaScript
// embedded in the binary; the page loads nothing from anywhere else.
package studio

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"time"
)

//go:embed static
var static embed.FS

// Prefix is where the studio's assets are served; the page itself is at /.
const Prefix = "/studio/"

// csp lets the page load only its own files and show the images it made
// from the API's bytes (blob: URLs): a page that tried to fetch anything
// from elsewhere would be stopped by the browser, not only by review.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; " +
	"form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

// asset is one embedded file with its validator.
type asset struct {
	body []byte
	etag string
	typ  string
}

// Handler serves the studio: GET / is the page, GET /studio/<file> its
// assets. Anything else under /studio/ is 404.
type Handler struct {
	assets map[string]asset // by path under static/
}

// New reads the embedded files once; their ETags are content hashes, so a
// browser revalidates cheaply and never keeps a stale script after an upgrade.
func New() *Handler {
	h := &Handler{assets: map[string]asset{}}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		typ := mime.TypeByExtension(path.Ext(p))
		if typ == "" {
			typ = "application/octet-stream"
		}
		h.assets[p[len("static/"):]] = asset{body: body, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, typ: typ}
		return nil
	})
	if err != nil {
		// The files are compiled in: failing to read them is a broken build.
		panic("studio: read embedded files: " + err.Error())
	}
	return h
}

// Register adds the studio's routes to mux: the page at exactly / (so that
// unknown API paths still get the mux's 404) and the assets under Prefix.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { h.serve(w, r, "index.html") })
	mux.HandleFunc("GET "+Prefix+"{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "../", http.StatusFound)
	})
	mux.HandleFunc("GET "+Prefix+"{file}", func(w http.ResponseWriter, r *http.Request) {
		if name := r.PathValue("file"); name != "index.html" {
			h.serve(w, r, name)
			return
		}
		http.NotFound(w, r)
	})
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, name string) {
	a, ok := h.assets[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.typ)
	hd.Set("ETag", a.etag)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	if name == "index.html" {
		hd.Set("Content-Security-Policy", csp)
	}
	// ServeContent answers If-None-Match with 304 and handles HEAD and ranges.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
}
