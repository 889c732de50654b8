package app

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/model"
)

// writeImages writes n seeded size×size PNGs of coloured discs into dir.
func writeImages(t testing.TB, dir string, n, size int) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, uint64(size)))
	for i := range n {
		img := imageio.NewRGB(size, size)
		cx, cy := rng.Float64()*float64(size), rng.Float64()*float64(size)
		rad := (0.2 + 0.3*rng.Float64()) * float64(size)
		col := [3]uint8{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256))}
		for y := range size {
			for x := range size {
				if math.Hypot(float64(x)-cx, float64(y)-cy) < rad {
					img.Set(x, y, col[0], col[1], col[2])
				} else {
					img.Set(x, y, 240, 240, 240)
				}
			}
		}
		if err := imageio.WritePNGFile(filepath.Join(dir, fmt.Sprintf("img%03d.png", i)), img); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func hirez(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = Main(context.Background(), Env{Stdout: &o, Stderr: &e}, args)
	return code, o.String(), e.String()
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, ExitUsage, "usage: hirez"},
		{[]string{"help"}, ExitOK, "commands:"},
		{[]string{"frobnicate"}, ExitUsage, `unknown command "frobnicate"`},
		{[]string{"upscale"}, ExitUsage, "--model, --in and --out are required"},
		{[]string{"upscale", "--bogus"}, ExitUsage, "flag provided but not defined"},
		{[]string{"upscale", "-h"}, ExitOK, "usage: hirez upscale"},
		{[]string{"train-local", "--data", "x", "--out", "y", "--steps", "1"}, ExitUsage, "--kind is required"},
		{[]string{"train-local", "--kind", "gan", "--data", "/nonexistent", "--out", "y", "--steps", "1"}, ExitUsage, "make data"},
		{[]string{"train-local", "--kind", "gan", "--data", ".", "--out", "y"}, ExitUsage, "set --steps"},
		{[]string{"train-local", "--kind", "gan", "--data", ".", "--out", "y", "--steps", "1", "--augment", "translation,rotate"}, ExitUsage, `unknown policy "rotate"`},
		{[]string{"train-local", "--kind", "gan", "--data", ".", "--out", "y", "--steps", "1", "--recipe", "tiny"}, ExitUsage, "want study, stable or smalldata"},
		{[]string{"experiment", "--gan-data", ".", "--heldout", ".", "--budget-clock", "sundial"}, ExitUsage, `--budget-clock "sundial": want cpu or wall`},
		{[]string{"train-local", "--kind", "gan", "--data", ".", "--out", "y", "--steps", "1", "--swd-every", "5", "--swd-data", "/nonexistent"}, ExitUsage, "--swd-data"},
		{[]string{"train-local", "--kind", "features", "--data", ".", "--out", "y", "--steps", "1", "--labels", "colour"}, ExitUsage, `--labels "colour": want subgroup or group`},
		{[]string{"train-local", "--kind", "features", "--data", ".", "--out", "y", "--steps", "1"}, ExitUsage, "make data"},
		{[]string{"train-local", "--kind", "gan", "--data", ".", "--out", "y", "--steps", "1", "--kid-every", "5", "--features", "/nonexistent.safetensors"}, ExitUsage, "--features"},
		{[]string{"eval", "features", "--features", "/nonexistent.safetensors"}, ExitUsage, "nonexistent"},
		{[]string{"eval", "gan", "--model", "x", "--data", ".", "--features", "/nonexistent.safetensors"}, ExitUsage, "--features"},
		{[]string{"train-local", "--kind", "gan", "--data", ".", "--out", "y", "--steps", "1", "--kid-every", "-5"}, ExitUsage, "want 0 or more"},
		{[]string{"train-defaults", "--train-features", "-1"}, ExitUsage, "want 0 or more"},
		{[]string{"eval"}, ExitUsage, "missing subcommand: want sr, features or gan"},
		{[]string{"eval", "fid"}, ExitUsage, `unknown subcommand "fid": want sr, features or gan`},
		{[]string{"models", "rm", "espcn"}, ExitUsage, `want <model>@<sha256:digest>, got "espcn"`},
		{[]string{"jobs", "get"}, ExitUsage, "missing <job>"},
		{[]string{"eval", "sr", "--model", "/nonexistent.safetensors", "--data", "."}, ExitFailure, "nonexistent"},
		{[]string{"generate", "--count", "-1"}, ExitUsage, "--count must be between 0 and 256"},
		{[]string{"generate", "--pipeline", "gan9000"}, ExitUsage, `--pipeline "gan9000"`},
		{[]string{"generate", "--gateway", "127.0.0.1:1", "--timeout", "300ms"}, ExitFailure, "is not SERVING (is it running?)"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, stderr := hirez(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}

// TestTrainUpscaleEval trains a tiny SR net and a tiny DCGAN through the command
// line, then upscales a folder and evaluates both.
func TestTrainUpscaleEval(t *testing.T) {
	if testing.Short() {
		t.Skip("trains real presets")
	}
	tmp := t.TempDir()
	data := writeImages(t, filepath.Join(tmp, "data"), 12, 32)
	run := filepath.Join(tmp, "run")
	code, out, errs := hirez(t, "train-local", "--kind", "sr", "--preset", "espcn-x2", "--data", data, "--out", run,
		"--steps", "3", "--patch", "16", "--batch", "8", "--backend", "ref", "--sample-every", "2")
	if code != 0 {
		t.Fatalf("train-local sr: %d %s %s", code, out, errs)
	}
	weights := filepath.Join(run, "sr.safetensors")
	if !strings.Contains(out, "sr step 3/3") || !strings.Contains(out, weights) {
		t.Errorf("output %q", out)
	}
	for _, f := range []string{"checkpoint.safetensors", "samples/step-0000002.png", "samples/final.png"} {
		if _, err := os.Stat(filepath.Join(run, f)); err != nil {
			t.Error(err)
		}
	}
	code, out, errs = hirez(t, "train-local", "--kind", "sr", "--preset", "espcn-x2", "--data", data, "--out", run,
		"--steps", "4", "--patch", "16", "--batch", "8", "--backend", "ref", "--resume")
	if code != 0 || !strings.Contains(out, "trained 4 steps") {
		t.Fatalf("resume: %d %s %s", code, out, errs)
	}

	// The periodic SWD of the GAN loop: one line per evaluation, with its floor.
	code, out, errs = hirez(t, "train-local", "--kind", "gan", "--side", "16", "--data", data, "--out", filepath.Join(tmp, "gan"),
		"--steps", "2", "--batch", "4", "--backend", "ref", "--swd-every", "1", "--swd-data", data, "--swd-n", "4", "--sample-every", "0")
	if code != 0 || !strings.Contains(out, "swd step 1: ") || !strings.Contains(out, "swd step 2: ") || !strings.Contains(out, "(floor ") {
		t.Fatalf("train-local gan --swd-every: %d %s %s", code, out, errs)
	}

	upOut := filepath.Join(tmp, "up")
	code, out, errs = hirez(t, "upscale", "--model", weights, "--in", data, "--out", upOut, "--scale", "4", "--backend", "ref")
	if code != 0 {
		t.Fatalf("upscale: %d %s %s", code, out, errs)
	}
	f, err := os.Open(filepath.Join(upOut, "img000.png"))
	if err != nil {
		t.Fatal(err)
	}
	text, err := imageio.ReadText(f)
	f.Close()
	if err != nil || len(text) < 3 || text[0].Value != "espcn-x2" || !strings.HasPrefix(text[1].Value, "sha256:") {
		t.Errorf("tEXt %v %v", text, err)
	}
	img, err := imageio.DecodeFile(filepath.Join(upOut, "img000.png"), imageio.DefaultLimits)
	if err != nil || img.W != 128 {
		t.Fatalf("upscaled %v %v", img, err)
	}

	code, out, errs = hirez(t, "eval", "sr", "--model", weights, "--data", data, "--backend", "ref")
	if code != 0 || !strings.Contains(out, "**mean of 12**") || !strings.Contains(out, "img011.png") {
		t.Fatalf("eval sr: %d %s %s", code, out, errs)
	}

	grun := filepath.Join(tmp, "gan")
	code, out, errs = hirez(t, "train-local", "--kind", "gan", "--side", "16", "--data", data, "--out", grun,
		"--steps", "2", "--batch", "4", "--backend", "ref")
	if code != 0 {
		t.Fatalf("train-local gan: %d %s %s", code, out, errs)
	}
	// The small-data recipe (DiffAugment, hinge, TTUR) against the spectrally
	// normalised D.
	code, out, errs = hirez(t, "train-local", "--kind", "gan", "--side", "16", "--data", data, "--out", filepath.Join(tmp, "gan-sn"),
		"--steps", "2", "--batch", "4", "--backend", "ref", "--recipe", "smalldata", "--disc", "dcgan-d-sn")
	if code != 0 {
		t.Fatalf("train-local gan --recipe smalldata: %d %s %s", code, out, errs)
	}
	grid := filepath.Join(tmp, "grid.png")
	code, out, errs = hirez(t, "eval", "gan", "--model", filepath.Join(grun, "generator.safetensors"), "--data", data,
		"--n", "4", "--grid", grid, "--backend", "ref")
	if code != 0 || !strings.Contains(out, "floor (real vs real)") || !strings.Contains(out, "4 images per set") {
		t.Fatalf("eval gan: %d %s %s", code, out, errs)
	}
	if _, err := os.Stat(grid); err != nil {
		t.Error(err)
	}
	// an upscaler where a generator belongs is a usage error
	if code, _, errs := hirez(t, "eval", "gan", "--model", weights, "--data", data, "--backend", "ref"); code != ExitUsage {
		t.Errorf("eval gan on an upscaler: %d %s", code, errs)
	}
}

// TestExperimentQuick runs the experiment's whole path (three approaches, both parts,
// scoring, grids, report) at 8 → 16 px on generated images with one step per stage.
func TestExperimentQuick(t *testing.T) {
	tmp := t.TempDir()
	data := writeImages(t, filepath.Join(tmp, "train"), 8, 32)
	held := writeImages(t, filepath.Join(tmp, "heldout"), 8, 32)
	report := filepath.Join(tmp, "docs", "experiment.md")
	code, out, errs := hirez(t, "experiment", "--gan-data", data, "--heldout", held, "--side", "8", "--batch", "4",
		"--epochs", "0.01", "--budget", "1ns", "--sr-patch", "16", "--n", "4", "--sr-eval", "2", "--work", filepath.Join(tmp, "work"),
		"--grids", filepath.Join(tmp, "docs", "experiment"), "--report", report, "--features", randomExtractor(t, tmp))
	if code != 0 {
		t.Fatalf("experiment: %d\n%s\n%s", code, out, errs)
	}
	md, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Equal epochs", "## Equal compute budget", "of process CPU time", "| CPU time | wall time |", "a: single DCGAN", "b: multi-stage GAN", "c: DCGAN + SR", "vs bicubic", "](experiment/epochs-a.png)", "| KID ×10³ | KID floor | precision | recall | copies |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	for _, g := range []string{"epochs-a.png", "epochs-b.png", "epochs-c.png", "budget-c.png"} {
		if _, err := os.Stat(filepath.Join(tmp, "docs", "experiment", g)); err != nil {
			t.Error(err)
		}
	}
}

// TestTrainDefaultsGANModel takes an already-trained generator (--gan-model): no
// GAN training, but SWD scoring and its card; then the default residual SR net.
// --only sr trains and documents the SR net alone.
func TestTrainDefaultsGANModel(t *testing.T) {
	if testing.Short() {
		t.Skip("trains real presets")
	}
	tmp := t.TempDir()
	data := writeImages(t, filepath.Join(tmp, "data"), 12, 32)
	held := writeImages(t, filepath.Join(tmp, "held"), 8, 32)
	grun := filepath.Join(tmp, "gan")
	if code, out, errs := hirez(t, "train-local", "--kind", "gan", "--side", "16", "--data", data, "--out", grun,
		"--steps", "1", "--batch", "4", "--backend", "ref"); code != 0 {
		t.Fatalf("train-local gan: %d %s %s", code, out, errs)
	}
	models := filepath.Join(tmp, "models")
	common := []string{"--out", models, "--work", filepath.Join(tmp, "work"), "--gan-data", data, "--gan-heldout", held, "--gan-group", "",
		"--sr-data", data, "--photos", "", "--sr-steps", "2", "--sr-patch", "16", "--sr-batch", "8", "--n", "4", "--backend", "ref"}
	code, out, errs := hirez(t, append([]string{"train-defaults", "--gan-model", filepath.Join(grun, "generator.safetensors")}, common...)...)
	if code != 0 {
		t.Fatalf("train-defaults: %d %s %s", code, out, errs)
	}
	if strings.Contains(out, "gan step") || !strings.Contains(out, "SWD") {
		t.Errorf("the generator was trained again or not scored:\n%s", out)
	}
	gcard, err := os.ReadFile(filepath.Join(models, defaultGANName+".md"))
	if err != nil || !strings.Contains(string(gcard), "trained beforehand") || !strings.Contains(string(gcard), "16 px") {
		t.Errorf("generator card %v:\n%s", err, gcard)
	}
	scard, err := os.ReadFile(filepath.Join(models, defaultSRName+".md"))
	if err != nil || !strings.Contains(string(scard), "`espcn-residual`") || !strings.Contains(string(scard), "bicubic") {
		t.Errorf("SR card %v:\n%s", err, scard)
	}
	for _, f := range []string{defaultGANName + ".safetensors", defaultSRName + ".safetensors"} {
		if _, err := os.Stat(filepath.Join(models, f)); err != nil {
			t.Error(err)
		}
	}
	if err := os.RemoveAll(models); err != nil {
		t.Fatal(err)
	}
	code, out, errs = hirez(t, append([]string{"train-defaults", "--only", "sr", "--sr-name", "up"}, common...)...)
	if code != 0 || strings.Contains(out, "SWD") {
		t.Fatalf("--only sr: %d %s %s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(models, defaultGANName+".md")); err == nil {
		t.Error("--only sr wrote a generator card")
	}
	if _, err := os.Stat(filepath.Join(models, "up.md")); err != nil {
		t.Error(err)
	}
	if code, _, _ := hirez(t, "train-defaults", "--gan-model", filepath.Join(tmp, "missing.safetensors")); code != ExitUsage {
		t.Errorf("a missing --gan-model: exit %d, want usage", code)
	}
}

// randomExtractor writes an untrained narrow emoji-features (side 16) into dir: a
// fixed random function of the image, enough to run the feature scores end to end.
func randomExtractor(t *testing.T, dir string) string {
	t.Helper()
	b, err := choose.Open("ref")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c, err := model.ConfigFor("emoji-features", 16)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range c.Layers {
		if l.Op == model.OpConv || l.Op == model.OpDense {
			c.Layers[i].Out = l.Out / 8
		}
	}
	c.Features /= 8
	net, err := model.BuildConfig(c, b, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Free()
	path := filepath.Join(dir, "features.safetensors")
	if err := net.Save(path, nil); err != nil {
		t.Fatal(err)
	}
	return path
}
