package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hirez-ml/hirez/cli/internal/plot"
	"github.com/hirez-ml/hirez/engine/features"
	"github.com/hirez-ml/hirez/engine/imageio"
)

// The feature curve of a GAN run: one line per --kid-every evaluation in
// <out>/kid.tsv, drawn as <out>/kid.png after each (KID against training
// minutes, with its spread and the floor). 'hirez plot kid' draws several
// runs on one chart.
const (
	curveFile   = "kid.tsv"
	curvePlot   = "kid.png"
	curveHeader = "step\tminutes\tkid\tkid_std\tfloor\tfloor_std\tprecision\trecall\tnearest\tcopies"
)

type curvePoint struct {
	Step                         int
	Minutes                      float64
	KID, KIDStd, Floor, FloorStd float64
	Precision, Recall            float64
	Nearest, Copies              float64
}

// appendCurve adds one evaluation to the run's curve file, writing the header
// into a new one. A resumed run appends to the same file.
func appendCurve(path string, step int, elapsed time.Duration, s features.Score) error {
	_, err := os.Stat(path)
	fresh := errors.Is(err, fs.ErrNotExist)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if fresh {
		fmt.Fprintln(f, curveHeader)
	}
	_, werr := fmt.Fprintf(f, "%d\t%.3f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\n", step, elapsed.Minutes(),
		s.KID.Mean, s.KID.Std, s.Floor.Mean, s.Floor.Std, s.Precision, s.Recall, s.Nearest, s.CopyShare)
	if err := f.Close(); werr == nil {
		werr = err
	}
	return werr
}

// readCurve reads a curve file. A step seen twice (a run resumed from a
// checkpoint before its last evaluation) keeps its last line.
func readCurve(path string) ([]curvePoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() || sc.Text() != curveHeader {
		return nil, fmt.Errorf("%s: not a feature curve (want the header %q)", path, curveHeader)
	}
	var pts []curvePoint
	index := map[int]int{}
	for n := 2; sc.Scan(); n++ {
		fields := strings.Split(sc.Text(), "\t")
		if len(fields) != 10 {
			return nil, fmt.Errorf("%s:%d: %d fields, want 10", path, n, len(fields))
		}
		var v [10]float64
		for i, s := range fields {
			if v[i], err = strconv.ParseFloat(s, 64); err != nil {
				return nil, fmt.Errorf("%s:%d: field %d: %v", path, n, i+1, err)
			}
		}
		p := curvePoint{Step: int(v[0]), Minutes: v[1], KID: v[2], KIDStd: v[3], Floor: v[4], FloorStd: v[5], Precision: v[6], Recall: v[7], Nearest: v[8], Copies: v[9]}
		if i, seen := index[p.Step]; seen {
			pts[i] = p
			continue
		}
		index[p.Step] = len(pts)
		pts = append(pts, p)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(pts) == 0 {
		return nil, fmt.Errorf("%s: no evaluations yet", path)
	}
	return pts, nil
}

// kidChart draws named curves: KID ± its spread over subsets against
// training minutes, log scale, with the floor of the first curve and twice it
// (issue #13's goal) as rules.
func kidChart(title string, names []string, curves [][]curvePoint) plot.Chart {
	c := plot.Chart{Title: title, XLabel: "training minutes (wall clock, 2-core VM)", YLabel: "KID x1000 (log)", LogY: true}
	for i, pts := range curves {
		s := plot.Series{Name: names[i], Color: plot.Palette[i%len(plot.Palette)]}
		for _, p := range pts {
			s.X, s.Y, s.Band = append(s.X, p.Minutes), append(s.Y, p.KID), append(s.Band, p.KIDStd)
		}
		c.Series = append(c.Series, s)
	}
	if len(curves) > 0 {
		last := curves[0][len(curves[0])-1]
		if last.Floor > 0 {
			c.Rules = []plot.Rule{
				{Name: fmt.Sprintf("floor %.0f (train vs held-out)", last.Floor), Y: last.Floor, Color: plot.Palette[2]},
				{Name: fmt.Sprintf("2x floor %.0f", 2*last.Floor), Y: 2 * last.Floor, Color: plot.Palette[4]},
			}
		}
	}
	return c
}

// writeKIDPlot draws the chart to path.
func writeKIDPlot(path string, c plot.Chart) error {
	img, err := c.Render()
	if err != nil {
		return err
	}
	rgb, err := imageio.FromImage(img)
	if err != nil {
		return err
	}
	return imageio.WritePNGFile(path, rgb)
}

// recordCurve is the --kid-every hook's file work: append the point, redraw
// the run's plot. Errors are returned for the caller to print; the run goes on.
func recordCurve(out string, step int, elapsed time.Duration, s features.Score) error {
	path := filepath.Join(out, curveFile)
	if err := appendCurve(path, step, elapsed, s); err != nil {
		return err
	}
	pts, err := readCurve(path)
	if err != nil {
		return err
	}
	return writeKIDPlot(filepath.Join(out, curvePlot), kidChart(filepath.Base(out), []string{filepath.Base(out)}, [][]curvePoint{pts}))
}

func runPlotKID(_ context.Context, env Env, args []string) error {
	fs := newFlags(env, "plot kid", "--curve NAME=out/run/kid.tsv [--curve …] --out PLOT.png [--title T]")
	var curves multiFlag
	fs.Var(&curves, "curve", "a run's feature curve (kid.tsv, written by train-local --kid-every), as NAME=PATH (repeat to compare runs)")
	out := fs.String("out", "", "the PNG to write")
	title := fs.String("title", "KID in feature space during training", "chart title")
	if err := parse(fs, args); err != nil {
		return err
	}
	if len(curves) == 0 || *out == "" {
		return usagef("--curve and --out are required")
	}
	var names []string
	var pts [][]curvePoint
	for _, c := range curves {
		name, path, ok := strings.Cut(c, "=")
		if !ok || name == "" || path == "" {
			return usagef("--curve %q: want NAME=PATH", c)
		}
		p, err := readCurve(path)
		if err != nil {
			return err
		}
		names, pts = append(names, name), append(pts, p)
	}
	if err := writeKIDPlot(*out, kidChart(*title, names, pts)); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "plot: %s\n", *out)
	return nil
}

func plotCommand() Command {
	return Command{
		Name:    "plot",
		Summary: "draw training curves as PNG: 'plot kid' (feature-space KID against training minutes)",
		Subs: []Command{
			{Name: "kid", Summary: "KID against training minutes of one or more runs (their kid.tsv), with the floor", Run: runPlotKID},
		},
	}
}
