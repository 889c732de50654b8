package e2e

// Headless Chromium for the studio's tests, driven with chromedp. Why
// chromedp: the tests click, type, wait for the page's state, read values
// from the page, catch a real download and take screenshots at two widths.
// `chromium --headless --screenshot` only loads a page and snaps it; a
// hand-written DevTools client would need a WebSocket client (not in the
// standard library) and the protocol's types, which is what chromedp is.
// Only this test package imports it: no binary links it.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Viewports of the screenshots: a common laptop screen and a phone.
const (
	laptopW, laptopH = 1366, 820
	phoneW, phoneH   = 390, 844
)

// chromiumPath finds Debian's chromium (scripts/apt-packages.txt installs
// it). Outside CI a machine without it skips the browser tests; in CI (CI
// set, as CI systems do) a missing browser fails them.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium on PATH: install Debian's chromium package (make deps does, as root) to run the studio's browser tests"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// page is one browser tab on the studio.
type page struct {
	t    *testing.T
	ctx  context.Context
	shot string // where screenshots go

	mu         sync.Mutex
	exceptions []string
}

// openBrowser starts headless Chromium for the test and returns its tab.
func openBrowser(t *testing.T) *page {
	t.Helper()
	exe := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.DisableGPU,
		chromedp.NoSandbox, // the tests may run as root (CI containers), where Chromium's sandbox refuses to start
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(laptopW, laptopH),
		chromedp.Flag("lang", "en-US"),
		chromedp.Flag("hide-scrollbars", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	p := &page{t: t, shot: screenshotDir(t)}
	// A failure screenshot of an earlier run would read as this run's.
	if old, err := filepath.Glob(filepath.Join(p.shot, failedPrefix(t)+"*.png")); err == nil {
		for _, f := range old {
			_ = os.Remove(f)
		}
	}
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithListener(func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok {
			p.mu.Lock()
			p.exceptions = append(p.exceptions, (&chromedp.ExceptionError{ExceptionDetails: e.ExceptionDetails}).Error())
			p.mu.Unlock()
		}
	}))
	p.ctx = ctx
	t.Cleanup(func() {
		p.mu.Lock()
		if len(p.exceptions) > 0 {
			t.Errorf("uncaught JavaScript exceptions:\n%s", strings.Join(p.exceptions, "\n"))
		}
		p.mu.Unlock()
		_ = chromedp.Cancel(ctx) // closes the browser and waits for it
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(laptopW, laptopH)); err != nil {
		t.Fatalf("start chromium (%s): %v", exe, err)
	}
	return p
}

// screenshotDir is out/studio/ at the repository root (ignored by git),
// kept after the run and overwritten by the next; with go test -artifacts
// the screenshots are also written to the test's artifact directory.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "out", "studio"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func artifactsOn() bool {
	f := flag.Lookup("test.artifacts")
	return f != nil && f.Value.String() == "true"
}

// do runs browser actions, failing the test (with a screenshot of the
// moment) on error.
func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.failShot(what)
		p.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](p *page, js string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		p.failShot("eval")
		p.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it is true.
func (p *page) waitFor(what, cond string, within time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+cond+")"))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			status := ""
			if s, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.getElementById("status").textContent + " | " + document.getElementById("error").innerText`)); err == nil {
				status = s
			}
			p.failShot(what)
			p.t.Fatalf("%s: not after %v (%s; page says: %s)", what, within, cond, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// screenshot saves the page at the given viewport as name.png: the whole
// page when full, else what the viewport shows.
func (p *page) screenshot(name string, w, h int64, full bool) {
	p.t.Helper()
	opts := []chromedp.EmulateViewportOption{}
	if w < 600 {
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch)
	}
	p.do("viewport for "+name, chromedp.EmulateViewport(w, h, opts...))
	// Two animation frames: the layout of the new width is painted.
	eval[bool](p, `new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`)
	var shot chromedp.Action[[]byte] = chromedp.CaptureScreenshot()
	if full {
		shot = chromedp.FullScreenshot(100)
	}
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, shot)
	if err != nil {
		p.t.Fatalf("screenshot %s: %v", name, err)
	}
	p.save(name, png)
	p.do("laptop viewport", chromedp.EmulateViewport(laptopW, laptopH))
}

func (p *page) save(name string, png []byte) {
	path := filepath.Join(p.shot, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Errorf("save screenshot: %v", err)
		return
	}
	if artifactsOn() {
		_ = os.WriteFile(filepath.Join(p.t.ArtifactDir(), name+".png"), png, 0o644)
	}
	p.t.Logf("screenshot %s", path)
}

// failShot keeps what the page showed when a step failed.
func (p *page) failShot(what string) {
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
		p.save(failedPrefix(p.t)+slug(what), png)
	}
}

// failedPrefix starts the names of a test's failure screenshots.
func failedPrefix(t *testing.T) string { return "failed-" + slug(t.Name()) + "-" }

func slug(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(s))
}

// allowDownloads makes the browser save downloads into dir under their
// suggested names.
func (p *page) allowDownloads(dir string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir,
	}); err != nil {
		p.t.Fatalf("allow downloads: %v", err)
	}
}

// waitFile waits for a download to be complete (Chromium writes
// name.crdownload and renames it at the end).
func waitFile(path string, within time.Duration) ([]byte, error) {
	deadline := time.Now().Add(within)
	for {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return b, nil
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if time.Now().After(deadline) {
			entries, _ := os.ReadDir(filepath.Dir(path))
			return nil, fmt.Errorf("%s not downloaded after %v (directory: %v)", path, within, entries)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
