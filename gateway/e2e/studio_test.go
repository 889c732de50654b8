package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/gateway/internal/studio"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// Selectors and page expressions the tests share.
const (
	doneCards = `document.querySelectorAll("#gallery .card[data-state=done]").length`
	errorCode = `(document.getElementById("error").hidden ? "" : document.getElementById("error").dataset.code)`
)

// cardView is what a person sees of one image card.
type cardView struct {
	State     string            `json:"state"`
	Seed      string            `json:"seed"`
	Line      string            `json:"line"`
	Prov      map[string]string `json:"prov"`
	Titles    map[string]string `json:"titles"`
	Stages    []string          `json:"stages"`
	Download  string            `json:"download"`
	Natural   int               `json:"natural"`
	ImgLoaded bool              `json:"loaded"`
}

const readCards = `[...document.querySelectorAll("#gallery .card")].map(li => ({
	state: li.dataset.state, seed: li.dataset.seed || "",
	line: li.querySelector(".model").textContent,
	prov: Object.fromEntries([...li.querySelectorAll(".kv dd")].map(d => [d.dataset.key, d.textContent])),
	titles: Object.fromEntries([...li.querySelectorAll(".kv dd")].filter(d => d.title).map(d => [d.dataset.key, d.title])),
	stages: [...li.querySelectorAll(".timings tbody tr td:first-child")].map(td => td.textContent),
	download: li.querySelector(".download").hidden ? "" : li.querySelector(".download").getAttribute("download"),
	natural: li.querySelector("img") ? li.querySelector("img").naturalWidth : 0,
	loaded: li.querySelector("img") ? li.querySelector("img").complete : false,
}))`

// errorView is the page's error box.
type errorView struct {
	Code, Title, Advice, Message, Retry string
	RetryShown, RetryDisabled           bool
}

const readError = `({Code: document.getElementById("error").dataset.code || "",
	Title: document.getElementById("error-title").textContent,
	Advice: document.getElementById("error-advice").textContent,
	Message: document.getElementById("error-message").textContent,
	Retry: document.getElementById("retry").textContent,
	RetryShown: !document.getElementById("retry").hidden,
	RetryDisabled: document.getElementById("retry").disabled})`

// httpGenerate calls the HTTP API as the page does and returns its lines.
func httpGenerate(t *testing.T, addr, body string) []*pb.GenerateImagesResponse {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/v1/images:generate", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %s", body, resp.Status)
	}
	var out []*pb.GenerateImagesResponse
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, pb.MaxMessageBytes)
	for sc.Scan() {
		var m pb.GenerateImagesResponse
		if err := protojson.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Bytes()[:min(80, len(sc.Bytes()))], err)
		}
		out = append(out, &m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// typeInto replaces an input's text: emptied, then typed key by key as a
// person would.
func typeInto(sel, text string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(emptyField(sel), chromedp.SendKeys(chromedp.CSS(sel), text))
}

// emptyField empties an input and tells the page, as deleting its text
// would. (chromedp.Clear leaves a number input's value, and SetValue
// cannot set "".)
func emptyField(sel string) chromedp.Action[chromedp.Void] {
	js := fmt.Sprintf(`(el => (el.value = "", el.dispatchEvent(new Event("input", {bubbles: true})), el.dispatchEvent(new Event("change", {bubbles: true}))))(document.querySelector(%q))`, sel)
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := chromedp.Evaluate[bool](js)(ctx, t)
		return chromedp.Void{}, err
	}
}

// clearModel empties the model field as a person would (the page asks
// again which model it serves when the field changes).
func clearModel(p *page) {
	p.t.Helper()
	p.do("clear the model", emptyField("#model"))
	p.waitFor("the served model again", `document.getElementById("served").textContent.startsWith("Serving ")`, 10*time.Second)
}

// startBundledStack runs the stack make demo runs, on the bundled default
// models (a DCGAN trained on the Smileys & Emotion emoji, so it has a
// label, and the emoji ESPCN upscaler), so that the screenshots show real
// images: a generator, two upscalers and a gateway whose small backlog lets
// one long request make it refuse the next (RESOURCE_EXHAUSTED). gwArgs
// are more gateway flags.
func startBundledStack(t *testing.T, gwArgs ...string) *stack {
	t.Helper()
	models, err := filepath.Abs(filepath.Join("..", "..", "models"))
	if err != nil {
		t.Fatal(err)
	}
	return startStackArgs(t, []string{"--model", filepath.Join(models, "dcgan32-smileys.safetensors"), "--max-wait", "2ms"},
		[]string{"--model", filepath.Join(models, "espcn-residual-x2-emoji.safetensors"), "--max-wait", "2ms"},
		append([]string{"--max-backlog", "64"}, gwArgs...))
}

// TestStudioGallery opens the studio in headless Chromium against the real
// stack (generator, two upscalers, gateway binaries on loopback): the first
// images come without a click; a request for 4 images with a seed streams
// them in with their provenance; a download is the API's PNG byte for byte;
// bad input, an unknown model, a busy gateway and upscalers that die
// mid-stream each show what to do. Screenshots at laptop and phone width
// go to out/studio/.
func TestStudioGallery(t *testing.T) {
	p := openBrowser(t)
	s := startBundledStack(t)
	base := "http://" + s.httpAddr + "/"

	// 1. The first set, no click.
	p.do("open the studio", chromedp.Navigate(base))
	p.waitFor("the first 8 images", doneCards+" === 8", 60*time.Second)
	served, err := s.gateway.ListLabels(context.Background(), &pb.GatewayServiceListLabelsRequest{})
	if err != nil || len(served.GetLabels()) != 1 {
		t.Fatalf("ListLabels = %v, %v; the bundled generator has one label", served, err)
	}
	genName, label := served.GetGenerator().GetName(), served.GetLabels()[0]
	p.waitFor("the served model and its label", fmt.Sprintf(`document.getElementById("served").textContent.includes(%q) && !document.getElementById("label-row").hidden && [...document.getElementById("label").options].some(o => o.value === %q)`, genName+" @ ", label), 10*time.Second)
	if st := eval[string](p, `document.getElementById("status").textContent`); !strings.HasPrefix(st, "8 images in ") {
		t.Errorf("status after the first set: %q", st)
	}
	p.screenshot("gallery-first-set-laptop", laptopW, laptopH, false)

	// 2. Four images of the model's label from seed 1234: placeholders,
	// then each image with its provenance as the stream brings it.
	p.do("ask for 4 images from seed 1234",
		typeInto("#count", "4"), typeInto("#seed", "1234"), chromedp.SetValue(chromedp.CSS("#label"), label), chromedp.Click(chromedp.CSS("#go")))
	p.waitFor("4 images from seed 1234", doneCards+` === 4 && document.querySelectorAll("#gallery .card").length === 4 && document.querySelector("#gallery .card").dataset.seed === "1234"`, 60*time.Second)
	p.waitFor("images decoded", `[...document.querySelectorAll("#gallery img")].every(i => i.complete && i.naturalWidth === 256)`, 10*time.Second)
	api := httpGenerate(t, s.httpAddr, fmt.Sprintf(`{"count": 4, "seed": "1234", "label": %q}`, label))
	byIndex := map[int32]*pb.GenerateImagesResponse{}
	for _, m := range api {
		byIndex[m.GetIndex()] = m
	}
	cards := eval[[]cardView](p, readCards)
	if len(cards) != 4 || len(byIndex) != 4 {
		t.Fatalf("%d cards, %d API images", len(cards), len(byIndex))
	}
	for i, c := range cards {
		want := byIndex[int32(i)]
		prov := want.GetProvenance()
		gen := prov.GetGenerator()
		if c.Seed != fmt.Sprint(1234+i) || c.Prov["seed"] != c.Seed || c.Prov["size"] != "256×256" || c.Prov["pipeline"] != "DCGAN_SRCNN" ||
			c.Prov["generator"] != gen.GetName()+"@"+strings.TrimPrefix(gen.GetVersion(), "sha256:")[:12] || c.Titles["generator"] != gen.GetVersion() ||
			c.Prov["latent"] != "100 dims from the seed" || c.Prov["label"] != label || prov.GetLabel() != label {
			t.Errorf("card %d provenance %+v, API's %v", i, c, prov)
		}
		for j, u := range prov.GetUpscalers() {
			key := fmt.Sprintf("upscaler %d", j+1)
			if c.Titles[key] != u.GetVersion() || !strings.HasPrefix(c.Prov[key], u.GetName()+"@") {
				t.Errorf("card %d %s = %q (%q), API's %v", i, key, c.Prov[key], c.Titles[key], u)
			}
		}
		var stages []string
		for _, st := range prov.GetTimings() {
			stages = append(stages, st.GetStage())
		}
		if strings.Join(c.Stages, ",") != strings.Join(stages, ",") || len(stages) < 3 {
			t.Errorf("card %d stages %v, API's %v", i, c.Stages, stages)
		}
		if !strings.HasPrefix(c.Line, genName+" → ") || !strings.Contains(c.Line, prov.GetUpscalers()[0].GetName()+" ×3") || !strings.HasSuffix(c.Line, " ms") {
			t.Errorf("card %d caption %q", i, c.Line)
		}
		if c.Download != fmt.Sprintf("hirez-%d.png", 1234+i) || c.Natural != 256 {
			t.Errorf("card %d: download %q, image %d px", i, c.Download, c.Natural)
		}
	}
	p.do("open the first card's provenance", chromedp.Click(chromedp.CSS("#gallery .card:first-child summary")))
	p.screenshot("gallery-seed-1234-laptop", laptopW, laptopH, true)
	p.screenshot("gallery-seed-1234-phone", phoneW, phoneH, true)
	// Usable at phone width: nothing wider than the screen, two columns.
	p.do("phone viewport", chromedp.EmulateViewport(phoneW, phoneH, chromedp.EmulateMobile))
	if over := eval[int](p, `document.documentElement.scrollWidth - window.innerWidth`); over > 0 {
		t.Errorf("at %d px the page is %d px too wide", phoneW, over)
	}
	if cols := eval[int](p, `getComputedStyle(document.getElementById("gallery")).gridTemplateColumns.split(" ").length`); cols != 2 {
		t.Errorf("at %d px the gallery has %d columns, want 2", phoneW, cols)
	}
	p.do("laptop viewport", chromedp.EmulateViewport(laptopW, laptopH))

	// 3. A download is the API's PNG, byte for byte (same seed, same model
	// version: same bytes).
	dl := t.TempDir()
	p.allowDownloads(dl)
	p.do("download the second image", chromedp.Click(chromedp.CSS("#gallery .card:nth-child(2) .download")))
	got, err := waitFile(filepath.Join(dl, "hirez-1235.png"), 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if want := byIndex[1].GetPng(); !bytes.Equal(got, want) {
		t.Fatalf("downloaded %d bytes, the API returned %d: not the same", len(got), len(want))
	}
	if texts, err := imageio.ReadText(bytes.NewReader(got)); err != nil || len(texts) == 0 {
		t.Fatalf("the download's provenance tEXt: %v, %v", texts, err)
	}

	// 4. Bad input, caught by the gateway: a model name it cannot accept.
	p.do("ask for a badly named model", typeInto("#model", "Bad_Name"), chromedp.Click(chromedp.CSS("#go")))
	p.waitFor("INVALID_ARGUMENT shown", errorCode+` === "INVALID_ARGUMENT"`, 15*time.Second)
	e := eval[errorView](p, readError)
	if !strings.Contains(e.Message, `generator.name "Bad_Name" is not a valid name`) || !strings.Contains(e.Advice, "Correct the field") ||
		eval[string](p, `document.getElementById("model").getAttribute("aria-invalid") || ""`) != "true" || e.RetryShown {
		t.Errorf("bad model name: %+v", e)
	}
	p.screenshot("error-invalid-argument-phone", phoneW, phoneH, false)

	// A seed that is not a number is caught on the page, before any call.
	clearModel(p)
	p.do("a seed that is not a number", typeInto("#seed", "12x"), chromedp.Click(chromedp.CSS("#go")))
	p.waitFor("the seed's message", `document.getElementById("error-message").textContent.includes("seed must be a whole number") && document.getElementById("error-title").textContent.startsWith("Check the form")`, 5*time.Second)

	// 5. A model the gateway does not serve: NOT_FOUND, with what to do.
	p.do("ask for an unknown model", typeInto("#seed", "7"), typeInto("#model", "no-such-model"), chromedp.Click(chromedp.CSS("#go")))
	p.waitFor("NOT_FOUND shown", errorCode+` === "NOT_FOUND" && document.getElementById("error-message").textContent.includes("no-such-model")`, 15*time.Second)
	if e := eval[errorView](p, readError); !strings.Contains(e.Message, `is not served here`) || !strings.Contains(e.Advice, "“"+genName+"”") {
		t.Errorf("unknown model: %+v", e)
	}
	p.screenshot("error-not-found-laptop", laptopW, laptopH, false)
	clearModel(p)

	// 6. A busy gateway: while a 256-image gRPC call holds the backlog, the
	// page's request is refused with a retry hint; the button counts down
	// and then gets the images.
	long, cancelLong := context.WithCancel(context.Background())
	defer cancelLong()
	openStream(t, long, s.gateway, &pb.GenerateImagesRequest{Count: 256, Seed: 7})
	p.do("ask while the gateway is busy", typeInto("#count", "2"), chromedp.Click(chromedp.CSS("#go")))
	p.waitFor("RESOURCE_EXHAUSTED shown", errorCode+` === "RESOURCE_EXHAUSTED"`, 15*time.Second)
	e = eval[errorView](p, readError)
	if !e.RetryShown || !e.RetryDisabled || !strings.HasPrefix(e.Retry, "Try again in ") || !strings.Contains(e.Advice, "Try again in ") {
		t.Errorf("busy gateway: %+v", e)
	}
	p.screenshot("error-busy-laptop", laptopW, laptopH, false)
	cancelLong()
	p.waitFor("the retry button", `!document.getElementById("retry").disabled`, 40*time.Second)
	p.do("retry", chromedp.Click(chromedp.CSS("#retry")))
	p.waitFor("2 images after the retry", doneCards+` === 2 && document.getElementById("error").hidden`, 60*time.Second)

	// 7. Both upscalers die while a long request streams: the images that
	// came stay, the rest are marked, and the message says what happened.
	p.do("ask for 256 images", typeInto("#count", "256"), chromedp.Click(chromedp.CSS("#go")))
	p.waitFor("the first images of 256", doneCards+` >= 1`, 60*time.Second)
	var wg sync.WaitGroup
	for _, u := range s.ups {
		wg.Go(func() { u.stop(syscall.SIGKILL) })
	}
	wg.Wait()
	p.waitFor("the mid-stream error", errorCode+` === "UNAVAILABLE"`, 60*time.Second)
	e = eval[errorView](p, readError)
	arrived := eval[int](p, doneCards)
	if !strings.HasPrefix(e.Title, fmt.Sprintf("%d of 256 images arrived, then the stream stopped.", arrived)) || arrived == 256 ||
		eval[int](p, `document.querySelectorAll("#gallery .card[data-state=missing]").length`) != 256-arrived {
		t.Errorf("mid-stream: %d arrived, %+v", arrived, e)
	}
	p.screenshot("error-mid-stream-laptop", laptopW, laptopH, false)
	// And a new request, with no upscaler left, fails before any image.
	p.do("ask with no upscaler", typeInto("#count", "2"), chromedp.Click(chromedp.CSS("#go")))
	p.waitFor("UNAVAILABLE at once", errorCode+` === "UNAVAILABLE" && !document.getElementById("error-title").textContent.includes("arrived")`, 60*time.Second)
	if e := eval[errorView](p, readError); !strings.Contains(e.Advice, "try again in a minute") || eval[int](p, `document.querySelectorAll("#gallery .card").length`) != 0 {
		t.Errorf("unavailable: %+v", e)
	}
	p.screenshot("error-unavailable-phone", phoneW, phoneH, false)

	// Nothing but the gateway's own origin was loaded.
	if others := eval[[]string](p, `performance.getEntriesByType("resource").map(e => e.name).filter(u => !u.startsWith(location.origin + "/"))`); len(others) > 0 {
		t.Errorf("the page loaded from elsewhere: %v", others)
	}
}

// TestStudioShowsEveryAPIError serves the real studio next to a stand-in
// for the API that answers each error the gateway can return, in the shape
// grpcapi writes it, including those the real stack cannot be made to
// return on demand (DEADLINE_EXCEEDED, a proxy's HTML page), and a
// labelled model (the label select, its value in the request).
func TestStudioShowsEveryAPIError(t *testing.T) {
	p := openBrowser(t)
	var buf bytes.Buffer
	if err := imageio.EncodePNG(&buf, imageio.NewRGB(256, 256)); err != nil {
		t.Fatal(err)
	}
	line := func(i int) string {
		b, _ := protojson.Marshal(&pb.GenerateImagesResponse{Png: buf.Bytes(), Width: 256, Height: 256, Seed: int64(40 + i), Index: int32(i),
			Provenance: &pb.Provenance{Seed: int64(40 + i), LatentDim: 100, Pipeline: pb.Pipeline_PIPELINE_DCGAN_SRCNN,
				Generator: &pb.ModelRef{Name: "fake-gen", Version: "sha256:" + strings.Repeat("ab", 32)}}})
		return string(b) + "\n"
	}
	type answer struct {
		status     int
		body       string
		retryAfter string
	}
	var (
		mu     sync.Mutex
		next   answer
		bodies []string
	)
	mux := http.NewServeMux()
	studio.New().Register(mux)
	mux.HandleFunc("GET /v1/labels", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintf(w, `{"generator": {"name": "fake-gen", "version": "sha256:%s"}, "labels": ["Smileys & Emotion", "Animals & Nature"]}`, strings.Repeat("ab", 32))
	})
	mux.HandleFunc("POST /v1/images:generate", func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		_, _ = b.ReadFrom(r.Body)
		mu.Lock()
		a := next
		bodies = append(bodies, b.String())
		mu.Unlock()
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		w.WriteHeader(a.status)
		_, _ = w.Write([]byte(a.body))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	answerWith := func(a answer) {
		mu.Lock()
		next = a
		mu.Unlock()
	}
	apiErr := func(code, msg string) string {
		return fmt.Sprintf(`{"error": {"code": %q, "message": %q}}`+"\n", code, msg)
	}

	answerWith(answer{status: 200, body: line(0) + line(1) + line(2)})
	p.do("open the studio", chromedp.Navigate(srv.URL+"/"))
	p.waitFor("the first set", doneCards+" === 3", 20*time.Second)
	p.waitFor("the label select", `!document.getElementById("label-row").hidden && document.getElementById("label").options.length === 3`, 10*time.Second)
	p.do("pick a label", chromedp.SetValue(chromedp.CSS("#label"), "Animals & Nature"))

	for _, tc := range []struct {
		name   string
		answer answer
		code   string
		title  string // the start of the error's title
		advice string // a phrase of its advice
		retry  bool
	}{
		{"invalid", answer{400, apiErr("INVALID_ARGUMENT", `label "Animals & Nature" is not known to model fake-gen`), ""}, "INVALID_ARGUMENT", "The gateway refused the request", "Correct the field", false},
		{"not found", answer{404, apiErr("NOT_FOUND", `model "x" is not served here`), ""}, "NOT_FOUND", "That model or version is not served here", "“fake-gen”", false},
		{"busy", answer{429, apiErr("RESOURCE_EXHAUSTED", "gateway busy: 300 images ahead"), "3"}, "RESOURCE_EXHAUSTED", "The gateway is busy", "Try again in 3 s", true},
		{"deadline", answer{504, apiErr("DEADLINE_EXCEEDED", "upscale: deadline exceeded"), ""}, "DEADLINE_EXCEEDED", "The images did not come in time", "Ask for fewer images (now 5)", false},
		{"unavailable", answer{503, apiErr("UNAVAILABLE", "no healthy upscaler"), ""}, "UNAVAILABLE", "The gateway cannot reach its image services", "try again in a minute", true},
		{"precondition", answer{400, apiErr("FAILED_PRECONDITION", "no Up Sampler pool (--upsampler-target)"), ""}, "FAILED_PRECONDITION", "This gateway is not set up", "ask the operator", false},
		{"internal", answer{500, apiErr("INTERNAL", "boom"), ""}, "INTERNAL", "The gateway failed", "send the operator", false},
		{"mid-stream", answer{200, line(0) + line(1) + apiErr("DEADLINE_EXCEEDED", "upscale: deadline exceeded"), ""}, "DEADLINE_EXCEEDED", "2 of 5 images arrived, then the stream stopped. The images did not come in time", "Ask for fewer", false},
		{"proxy page", answer{502, "<html><body>Bad Gateway</body></html>", ""}, "HTTP_502", "The gateway failed", "send the operator", false},
	} {
		answerWith(tc.answer)
		p.do(tc.name, typeInto("#count", "5"), chromedp.Click(chromedp.CSS("#go")))
		p.waitFor(tc.name, errorCode+` === "`+tc.code+`"`, 10*time.Second)
		e := eval[errorView](p, readError)
		if !strings.HasPrefix(e.Title, tc.title) || !strings.Contains(e.Advice, tc.advice) || e.RetryShown != tc.retry || e.Message == "" {
			t.Errorf("%s: %+v", tc.name, e)
		}
		if tc.name == "mid-stream" {
			if n := eval[int](p, doneCards); n != 2 {
				t.Errorf("mid-stream: %d images kept, want 2", n)
			}
			p.screenshot("fake-mid-stream-phone", phoneW, phoneH, false)
		}
		if tc.name == "busy" {
			p.screenshot("fake-busy-phone", phoneW, phoneH, false)
		}
		// Clear the box between cases: a case must show its own message.
		eval[bool](p, `(document.getElementById("error").hidden = true, delete document.getElementById("error").dataset.code, true)`)
	}
	mu.Lock()
	last := bodies[len(bodies)-1]
	mu.Unlock()
	if !strings.Contains(last, `"label":"Animals & Nature"`) || !strings.Contains(last, `"count":5`) {
		t.Errorf("the page sent %s", last)
	}

	// The server is gone: the page says so rather than failing silently.
	srv.CloseClientConnections()
	srv.Close()
	p.do("ask with the gateway down", chromedp.Click(chromedp.CSS("#go")))
	p.waitFor("NETWORK shown", errorCode+` === "NETWORK"`, 10*time.Second)
	if e := eval[errorView](p, readError); !strings.Contains(e.Advice, "Check that it is running") {
		t.Errorf("gateway down: %+v", e)
	}
}
