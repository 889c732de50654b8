package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hirez-ml/hirez/engine/features"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/metrics"
)

func TestCurveRoundTripAndPlot(t *testing.T) {
	dir := t.TempDir()
	score := func(kid float64) features.Score {
		return features.Score{KID: metrics.KIDResult{Mean: kid, Std: kid / 10}, Floor: metrics.KIDResult{Mean: 30, Std: 5}, Precision: 0.8, Recall: 0.3}
	}
	for i, kid := range []float64{900, 500, 400} {
		if err := recordCurve(dir, 250*(i+1), time.Duration(i+1)*time.Minute, score(kid)); err != nil {
			t.Fatal(err)
		}
	}
	// A resumed run evaluates step 750 again: the later line wins.
	if err := appendCurve(filepath.Join(dir, curveFile), 750, 3*time.Minute, score(350)); err != nil {
		t.Fatal(err)
	}
	pts, err := readCurve(filepath.Join(dir, curveFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 3 || pts[2].KID != 350 || pts[0].Minutes != 1 || pts[1].Recall != 0.3 {
		t.Fatalf("curve %+v", pts)
	}
	if _, err := imageio.DecodeFile(filepath.Join(dir, curvePlot), imageio.Limits{}); err != nil {
		t.Errorf("the run's plot: %v", err)
	}
	var out bytes.Buffer
	env := Env{Stdout: &out, Stderr: &out}
	png := filepath.Join(dir, "two.png")
	if err := runPlotKID(context.Background(), env, []string{"--curve", "a=" + filepath.Join(dir, curveFile), "--curve", "b=" + filepath.Join(dir, curveFile), "--out", png}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(png); err != nil {
		t.Error(err)
	}
	bad := filepath.Join(dir, "bad.tsv")
	if err := os.WriteFile(bad, []byte("step\tkid\n1\t2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--out", png},
		{"--curve", "nameonly", "--out", png},
		{"--curve", "x=" + bad, "--out", png},
	} {
		if err := runPlotKID(context.Background(), env, args); err == nil {
			t.Errorf("plot kid %q: no error", strings.Join(args, " "))
		}
	}
}
