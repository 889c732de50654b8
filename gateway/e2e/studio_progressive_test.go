package e2e

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/hirez-ml/hirez/gateway/internal/studio"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// readPreviewCards is, per card, what the progressive stream left: the
// sides of the previews it showed (in order), how many preview tags and
// preview images it still has, its image's natural width and CSS
// image-rendering, and its state.
const readPreviewCards = `[...document.querySelectorAll("#gallery .card")].map(li => {
	const img = li.querySelector(".frame img");
	return [li.dataset.state, li.dataset.previews || "", String(li.querySelectorAll(".tag, img.preview").length),
		li.querySelector(".tag") ? li.querySelector(".tag").textContent : "",
		img ? String(img.naturalWidth) : "0", img ? getComputedStyle(img).imageRendering : ""].join("|");
})`

// TestStudioProgressive: the page asks for previews and shows each one,
// pixelated and tagged with its side, until the final replaces it. On the
// real stack (bundled models) every card of the first set shows the
// generator's 32² and the passes' 64² and 128² previews, then the 256²
// image, untagged; with both upscalers stopped (SIGSTOP) the page shows the
// generator's 32² previews alone, and after SIGCONT the finals. For the
// 64² screenshots the same stream, recorded from the real gateway, is
// replayed by a stand-in that holds it after the 64² previews.
func TestStudioProgressive(t *testing.T) {
	p := openBrowser(t)
	// Hop timeouts longer than the upscalers' pause below, so that the
	// gateway waits for them rather than retrying and failing.
	s := startBundledStack(t, "--hop-timeout-min", "60s", "--hop-timeout-max", "60s")

	p.do("open the studio", chromedp.Navigate("http://"+s.httpAddr+"/"))
	p.waitFor("the first 8 images", doneCards+" === 8", 60*time.Second)
	p.waitFor("images decoded", `[...document.querySelectorAll("#gallery img")].every(i => i.complete && i.naturalWidth === 256)`, 10*time.Second)
	for i, c := range eval[[]string](p, readPreviewCards) {
		if c != "done|32,64,128|0||256|auto" {
			t.Errorf("real stack, card %d: %s, want done after previews 32, 64, 128, no tag, 256 px, not pixelated", i, c)
		}
	}

	// The real stack held mid-way: upscalers stopped, the generator's
	// images are all there is, shown as previews; then the finals.
	for _, u := range s.ups {
		_ = u.cmd.Process.Signal(syscall.SIGSTOP)
	}
	stopped := true
	cont := func() {
		if stopped {
			for _, u := range s.ups {
				_ = u.cmd.Process.Signal(syscall.SIGCONT)
			}
			stopped = false
		}
	}
	defer cont()
	p.do("ask for 4 images from seed 1234", typeInto("#count", "4"), typeInto("#seed", "1234"), chromedp.Click(chromedp.CSS("#go")))
	p.waitFor("4 previews at 32²", `[...document.querySelectorAll("#gallery .card")].filter(li => li.dataset.state === "preview").length === 4`, 20*time.Second)
	p.waitFor("previews decoded", `[...document.querySelectorAll("#gallery img")].every(i => i.complete && i.naturalWidth === 32)`, 10*time.Second)
	for i, c := range eval[[]string](p, readPreviewCards) {
		if c != "preview|32|2|preview 32²|32|pixelated" {
			t.Errorf("upscalers stopped, card %d: %s, want the generator's 32 px preview, pixelated, tagged", i, c)
		}
	}
	p.screenshot("progressive-real-preview-32-laptop", laptopW, laptopH, false)
	cont()
	p.waitFor("the 4 finals", doneCards+" === 4", 60*time.Second)
	p.waitFor("finals decoded", `[...document.querySelectorAll("#gallery img")].every(i => i.complete && i.naturalWidth === 256)`, 10*time.Second)
	for i, c := range eval[[]string](p, readPreviewCards) {
		if c != "done|32,64,128|0||256|auto" {
			t.Errorf("upscalers back, card %d: %s", i, c)
		}
	}
	p.screenshot("progressive-real-final-laptop", laptopW, laptopH, false)

	// Record the real stream of 8 images from seed 1234 with previews.
	resp, err := http.Post("http://"+s.httpAddr+"/v1/images:generate", "application/json", strings.NewReader(`{"count": 8, "seed": "1234", "previews": true}`))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	sides := map[string]int32{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, pb.MaxMessageBytes)
	for sc.Scan() {
		var m pb.GenerateImagesResponse
		if err := protojson.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		l := sc.Text() + "\n"
		lines = append(lines, l)
		sides[l] = m.GetPreview().GetSide() // 0 for a final
	}
	resp.Body.Close()
	if len(lines) != 8*4 {
		t.Fatalf("recorded %d lines, want 32 (3 previews and a final per image)", len(lines))
	}
	// By stage: every 32² preview, every 64², [hold], every 128², the
	// finals (each image's own order is kept: a stable sort by side).
	rank := func(l string) int32 {
		if sides[l] == 0 {
			return 1 << 20
		}
		return sides[l]
	}
	sort.SliceStable(lines, func(a, b int) bool { return rank(lines[a]) < rank(lines[b]) })
	labels, err := http.Get("http://" + s.httpAddr + "/v1/labels")
	if err != nil {
		t.Fatal(err)
	}
	labelsBody, _ := io.ReadAll(labels.Body)
	labels.Body.Close()

	release := make(chan struct{})
	var releaseOnce sync.Once
	mux := http.NewServeMux()
	studio.New().Register(mux)
	mux.HandleFunc("GET /v1/labels", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(labelsBody) })
	mux.HandleFunc("POST /v1/images:generate", func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		_, _ = b.ReadFrom(r.Body)
		hold := strings.Contains(b.String(), `"seed":"1234"`)
		if !strings.Contains(b.String(), `"previews":true`) {
			t.Errorf("the page asked without previews: %s", b.String())
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		for k, l := range lines {
			if hold && k > 0 && sides[lines[k-1]] == 64 && sides[l] != 64 {
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
			}
			_, _ = io.WriteString(w, l)
			w.(http.Flusher).Flush()
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer releaseOnce.Do(func() { close(release) })

	p.do("open the stand-in", chromedp.Navigate(srv.URL+"/"))
	p.waitFor("the first set from the stand-in", doneCards+" === 8", 20*time.Second)
	p.do("ask for 8 images from seed 1234", typeInto("#seed", "1234"), chromedp.Click(chromedp.CSS("#go")))
	p.waitFor("8 previews at 64²", `[...document.querySelectorAll("#gallery .card")].filter(li => li.dataset.state === "preview" && li.dataset.previews === "32,64").length === 8`, 20*time.Second)
	p.waitFor("previews decoded", `[...document.querySelectorAll("#gallery img")].every(i => i.complete && i.naturalWidth === 64)`, 10*time.Second)
	for i, c := range eval[[]string](p, readPreviewCards) {
		if c != "preview|32,64|2|preview 64²|64|pixelated" {
			t.Errorf("held after 64², card %d: %s, want a pixelated 64 px preview tagged \"preview 64²\"", i, c)
		}
	}
	p.screenshot("progressive-preview-64-laptop", laptopW, laptopH, false)
	p.screenshot("progressive-preview-64-phone", phoneW, phoneH, false)

	releaseOnce.Do(func() { close(release) })
	p.waitFor("the finals", doneCards+" === 8", 20*time.Second)
	p.waitFor("finals decoded", `[...document.querySelectorAll("#gallery img")].every(i => i.complete && i.naturalWidth === 256)`, 10*time.Second)
	for i, c := range eval[[]string](p, readPreviewCards) {
		if c != "done|32,64,128|0||256|auto" {
			t.Errorf("after the finals, card %d: %s", i, c)
		}
	}
	p.screenshot("progressive-final-laptop", laptopW, laptopH, false)
}
