package registry_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/backend/ref"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/platform/fault"
	"github.com/hirez-ml/hirez/proto/hirez/limits"

	"github.com/hirez-ml/hirez/services/trainer/internal/registry"
	"github.com/hirez-ml/hirez/services/trainer/internal/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func writeImages(t *testing.T, dir string, n, w int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		img := image.NewNRGBA(image.Rect(0, 0, w, w))
		for y := range w {
			for x := range w {
				img.Set(x, y, color.NRGBA{uint8(x*4 + i*20), uint8(y*4 + i*10), uint8((x + y) * 2), 255})
			}
		}
		f, err := os.Create(filepath.Join(dir, string(rune('a'+i))+".png"))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}

// srcnn writes an srcnn-classic file whose weights pass each colour channel
// straight through (so the net is nearest-neighbour 2×, a decent upscaler), plus
// Gaussian noise of stddev noise on every weight (0: none).
func srcnn(t *testing.T, path string, noise float64) {
	t.Helper()
	net, err := model.Build("srcnn-classic", ref.New(), model.Options{Side: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Free()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range net.Params() {
		sh := p.Value.Shape()
		data := make([]float32, p.Value.Len())
		if strings.HasSuffix(p.Name, ".weight") && len(sh) == 4 {
			out, in, kh, kw := sh[0], sh[1], sh[2], sh[3]
			for c := 0; c < 3 && c < out && c < in; c++ {
				data[((c*in+c)*kh+kh/2)*kw+kw/2] = 1
			}
		}
		for i := range data {
			data[i] += float32(rng.NormFloat64() * noise)
		}
		if err := p.Value.CopyFromHost(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := net.Save(path, nil); err != nil {
		t.Fatal(err)
	}
}

func newRegistry(t *testing.T) (*registry.Registry, string) {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b, err := choose.Open("") // the fastest built in: the canary runs real networks
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(db, dir, registry.NewEngineEvaluator(b))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	return reg, dir
}

func TestPromotionRefusesAWorseModelUnlessForced(t *testing.T) {
	reg, dir := newRegistry(t)
	ctx := context.Background()
	writeImages(t, filepath.Join(dir, "eval", "sr"), 4, 64)
	good, bad := filepath.Join(t.TempDir(), "good.safetensors"), filepath.Join(t.TempDir(), "bad.safetensors")
	srcnn(t, good, 0)
	srcnn(t, bad, 0.05)

	watch, err := reg.Watch(ctx, []string{"sr"})
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()

	gv, err := reg.Publish(ctx, "sr", registry.KindSRCNN, good, "jobs/a", nil)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(good)
	sum := sha256.Sum256(data)
	if gv.Digest != limits.DigestPrefix+hex.EncodeToString(sum[:]) || gv.Preset != "srcnn-classic" || gv.ImageSize != 32 {
		t.Fatalf("published %+v", gv)
	}
	p, err := reg.Promote(ctx, "sr", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Promoted || p.Canary.Old != nil || p.Canary.Metric != registry.MetricPSNR || p.Canary.Value < 20 {
		t.Fatalf("first promotion %+v", p.Canary)
	}

	bv, err := reg.Publish(ctx, "sr", registry.KindSRCNN, bad, "jobs/b", nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err = reg.Promote(ctx, "sr", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if p.Promoted || p.Canary.Passed || p.Canary.Old == nil || p.Canary.Value >= *p.Canary.Old {
		t.Fatalf("worse candidate: promoted %v canary %+v", p.Promoted, p.Canary)
	}
	t.Logf("refused: %s", p.Canary.Refusal)
	if !strings.Contains(p.Canary.Refusal, "worse") || !strings.Contains(p.Canary.Refusal, "force") || p.Previous != gv.Digest {
		t.Fatalf("refusal %q, previous %s", p.Canary.Refusal, p.Previous)
	}
	if prod, _ := reg.Resolve(ctx, "sr", limits.AliasProduction); prod.Digest != gv.Digest {
		t.Fatalf("production moved to %s after a refusal", prod.Digest)
	}
	p, err = reg.Promote(ctx, "sr", bv.Digest, true)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Promoted || p.Canary.Passed {
		t.Fatalf("forced: promoted %v passed %v", p.Promoted, p.Canary.Passed)
	}
	if prod, _ := reg.Resolve(ctx, "sr", ""); prod.Digest != bv.Digest || prod.Metrics[registry.MetricPSNR] == 0 {
		t.Fatalf("production after force: %+v", prod)
	}

	// The watcher saw: snapshot (nothing yet), then every change in order.
	var got []string
	for range 7 {
		c, err := next(watch)
		if err != nil {
			t.Fatal(err)
		}
		if c.Event == nil {
			got = append(got, "snapshot")
			continue
		}
		got = append(got, c.Event.Alias+string(rune('0'+int(c.Event.Type))))
	}
	want := "snapshot 1 candidate2 production2 1 candidate2 production2"
	if strings.Join(got, " ") != want {
		t.Fatalf("events %q, want %q", strings.Join(got, " "), want)
	}

	// A late watcher starts from the current aliases.
	late, err := reg.Watch(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	c, err := next(late)
	if err != nil || len(c.Snapshot) != 1 || c.Snapshot[0].Aliases[limits.AliasProduction] != bv.Digest || c.Snapshot[0].VersionCount != 2 {
		t.Fatalf("late snapshot %+v, %v", c.Snapshot, err)
	}
}

func next(s interface {
	Next(context.Context) (registry.Change, error)
}) (registry.Change, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Next(ctx)
}

func TestRegistryErrors(t *testing.T) {
	reg, _ := newRegistry(t)
	ctx := context.Background()
	f := filepath.Join(t.TempDir(), "m.safetensors")
	srcnn(t, f, 0)
	if _, err := reg.Publish(ctx, "sr", registry.KindSRCNN, f, "", nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		err  error
		kind fault.Kind
	}{}
	add := func(name string, err error, k fault.Kind) {
		cases = append(cases, struct {
			name string
			err  error
			kind fault.Kind
		}{name, err, k})
	}
	_, err := reg.Publish(ctx, "sr", registry.KindESPCN, f, "", nil)
	add("other kind under a name", err, fault.KindFailedPrecondition)
	_, err = reg.Resolve(ctx, "sr", limits.AliasProduction)
	add("no production yet", err, fault.KindNotFound)
	_, err = reg.Resolve(ctx, "nope", "")
	add("unknown model", err, fault.KindNotFound)
	_, err = reg.Resolve(ctx, "Bad/Name", "")
	add("bad name", err, fault.KindInvalid)
	_, _, err = reg.SetAlias(ctx, "sr", "production", "candidate")
	add("alias to an alias", err, fault.KindInvalid)
	_, _, err = reg.SetAlias(ctx, "sr", "rollback", limits.DigestPrefix+strings.Repeat("0", 64))
	add("alias to an unknown digest", err, fault.KindNotFound)
	_, err = reg.Promote(ctx, "sr", "", false)
	add("no evaluation set", err, fault.KindFailedPrecondition)
	for _, c := range cases {
		if fault.KindOf(c.err) != c.kind {
			t.Errorf("%s: %v (kind %v), want %v", c.name, c.err, fault.KindOf(c.err), c.kind)
		}
	}
	if errors.Is(nil, fault.KindInvalid) {
		t.Fatal("unreachable")
	}
}

// The generator canary renders the fixed seed set and measures SWD to the
// evaluation images: lower is better, and a version is its own equal.
func TestGeneratorCanaryIsSWD(t *testing.T) {
	reg, dir := newRegistry(t)
	ctx := context.Background()
	writeImages(t, filepath.Join(dir, "eval", "gen"), 4, 32)
	net, err := model.Build("dcgan-g-study", ref.New(), model.Options{Side: 32, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "g.safetensors")
	err = net.Save(f, nil)
	net.Free()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Publish(ctx, "gen", registry.KindDCGANGenerator, f, "", nil); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second promotion compares the version with itself
		p, err := reg.Promote(ctx, "gen", "", false)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Promoted || p.Canary.Metric != registry.MetricSWD || p.Canary.HigherIsBetter || !(p.Canary.Value > 0) {
			t.Fatalf("promotion %+v", p)
		}
		if p.Canary.Old != nil && *p.Canary.Old != p.Canary.Value {
			t.Fatalf("same version scored %v and %v", *p.Canary.Old, p.Canary.Value)
		}
	}
}

// A published version's file has the umask's permissions (0644 under 022), not
// os.CreateTemp's 0600: the serving pods' registry-follow and operators read it.
func TestPublishedFileRespectsUmask(t *testing.T) {
	reg, _ := newRegistry(t)
	src := filepath.Join(t.TempDir(), "m.safetensors")
	srcnn(t, src, 0)
	old := syscall.Umask(0o022)
	v, err := reg.Publish(context.Background(), "sr", registry.KindSRCNN, src, "jobs/a", nil)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(reg.Path("sr", v.Digest))
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o644 {
		t.Errorf("published file mode %v, want -rw-r--r-- (0666 less umask 022)", got)
	}
}
