package plot

import (
	"image/color"
	"math"
	"strings"
	"testing"
)

func TestRenderDrawsSeriesAndRules(t *testing.T) {
	red := color.RGBA{200, 0, 0, 255}
	green := color.RGBA{0, 150, 0, 255}
	c := Chart{Title: "t", XLabel: "x", YLabel: "y", LogY: true,
		Series: []Series{{Name: "run", X: []float64{0, 10, 20}, Y: []float64{1000, 300, 90}, Band: []float64{100, 50, 20}, Color: red}},
		Rules:  []Rule{{Name: "floor", Y: 30, Color: green}}}
	img, err := c.Render()
	if err != nil {
		t.Fatal(err)
	}
	count := func(col color.RGBA) int {
		n := 0
		b := img.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				if img.RGBAAt(x, y) == col {
					n++
				}
			}
		}
		return n
	}
	if n := count(red); n < 200 {
		t.Errorf("the series has %d pixels of its colour", n)
	}
	if n := count(green); n < 100 {
		t.Errorf("the rule has %d pixels of its colour", n)
	}
	// The line falls: its first point is drawn above (smaller y) its last.
	p := plotArea{x0: marginLeft, y0: marginTop, x1: 720 - marginRight, y1: 420 - marginBottom, log: true}
	p.xr, p.yr, _ = c.ranges()
	if p.py(1000) >= p.py(90) || p.py(-5) != p.y1 {
		t.Errorf("log scale: y(1000) = %d, y(90) = %d, y(−5) = %d (bottom %d)", p.py(1000), p.py(90), p.py(-5), p.y1)
	}
}

func TestRenderRefusesBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Chart
		want string
	}{
		{"empty", Chart{}, "nothing to draw"},
		{"lengths", Chart{Series: []Series{{Name: "a", X: []float64{1, 2}, Y: []float64{1}}}}, "2 x, 1 y"},
		{"nan", Chart{Series: []Series{{Name: "a", X: []float64{1}, Y: []float64{math.NaN()}}}}, "not finite"},
		{"tiny", Chart{Width: 50, Height: 50, Series: []Series{{Name: "a", X: []float64{1}, Y: []float64{1}}}}, "too small"},
	} {
		if _, err := tc.c.Render(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestTicks(t *testing.T) {
	// About five round steps: 73/5 = 14.6 rounds up to a step of 20.
	if got := ticks(0, 73); len(got) != 4 || got[0] != 0 || got[1] != 20 || got[3] != 60 {
		t.Errorf("ticks(0, 73) = %v, want [0 20 40 60]", got)
	}
	for _, v := range ticks(0.013, 0.071) {
		if v < 0.013 || v > 0.071 {
			t.Errorf("tick %v outside [0.013, 0.071]", v)
		}
	}
}
