// Package plot draws line charts as images, so that a training curve can be
// looked at and committed as a PNG without tools from outside the project: an
// x–y chart with labelled ticks, one polyline per series (optionally with a
// ± band) and horizontal reference lines, text in the 7×13 bitmap font of
// golang.org/x/image.
package plot

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Series is one line: points (X[i], Y[i]) joined in order. Band, when set,
// holds a half-width per point drawn as a light area around the line (the
// spread of a measurement).
type Series struct {
	Name  string
	X, Y  []float64
	Band  []float64
	Color color.RGBA
}

// Rule is a horizontal reference line across the chart (a floor, a goal).
type Rule struct {
	Name  string
	Y     float64
	Color color.RGBA
}

// Chart is what Render draws. LogY plots y on a base-10 log scale; values at
// or below zero are drawn at the bottom edge.
type Chart struct {
	Title, XLabel, YLabel string
	Series                []Series
	Rules                 []Rule
	LogY                  bool
	Width, Height         int // pixels; 0 = 720 × 420
}

// Palette is a set of distinguishable line colours, in order of use.
var Palette = []color.RGBA{
	{31, 119, 180, 255}, {214, 39, 40, 255}, {44, 160, 44, 255}, {148, 103, 189, 255}, {255, 127, 14, 255}, {23, 190, 207, 255},
}

const (
	marginLeft, marginRight, marginTop, marginBottom = 70, 20, 40, 45
	charW, lineH                                     = 7, 13
)

// Render draws the chart.
func (c Chart) Render() (*image.RGBA, error) {
	w, h := c.Width, c.Height
	if w == 0 {
		w = 720
	}
	if h == 0 {
		h = 420
	}
	if w < marginLeft+marginRight+100 || h < marginTop+marginBottom+100 {
		return nil, fmt.Errorf("plot: %d×%d is too small", w, h)
	}
	xr, yr, err := c.ranges()
	if err != nil {
		return nil, err
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	p := plotArea{x0: marginLeft, y0: marginTop, x1: w - marginRight, y1: h - marginBottom, xr: xr, yr: yr, log: c.LogY}
	grey, dark := color.RGBA{225, 225, 225, 255}, color.RGBA{60, 60, 60, 255}
	for _, t := range ticks(xr[0], xr[1]) {
		x := p.px(t)
		vline(img, x, p.y0, p.y1, grey)
		label := format(t)
		text(img, x-len(label)*charW/2, p.y1+lineH+4, label, dark)
	}
	for _, t := range p.yticks() {
		y := p.py(t)
		hline(img, p.x0, p.x1, y, grey)
		label := format(t)
		text(img, p.x0-6-len(label)*charW, y+4, label, dark)
	}
	rect(img, p.x0, p.y0, p.x1, p.y1, dark)
	for _, r := range c.Rules {
		y := p.py(r.Y)
		for x := p.x0; x < p.x1; x += 8 { // dashed
			hline(img, x, min(x+4, p.x1), y, r.Color)
		}
	}
	for _, s := range c.Series {
		if len(s.Band) == len(s.X) {
			band := s.Color
			band.A = 50
			for i := range len(s.X) - 1 {
				// Each column once: a segment's last column is the next one's first.
				for x := p.px(s.X[i]); x < p.px(s.X[i+1]) || (i == len(s.X)-2 && x == p.px(s.X[i+1])); x++ {
					f := float64(x-p.px(s.X[i])) / math.Max(1, float64(p.px(s.X[i+1])-p.px(s.X[i])))
					mid := s.Y[i] + f*(s.Y[i+1]-s.Y[i])
					half := s.Band[i] + f*(s.Band[i+1]-s.Band[i])
					blendV(img, x, p.py(mid+half), p.py(mid-half), band)
				}
			}
		}
		for i := range len(s.X) - 1 {
			line(img, p.px(s.X[i]), p.py(s.Y[i]), p.px(s.X[i+1]), p.py(s.Y[i+1]), s.Color)
		}
		for i := range s.X {
			dot(img, p.px(s.X[i]), p.py(s.Y[i]), s.Color)
		}
	}
	// The title on the top row, the y axis's name on the row below it, over
	// the axis: a long title never runs into it.
	text(img, (w-len(c.Title)*charW)/2, marginTop-18, c.Title, dark)
	text(img, (p.x0+p.x1-len(c.XLabel)*charW)/2, h-8, c.XLabel, dark)
	text(img, 4, marginTop-4, c.YLabel, dark)
	c.legend(img, p)
	return img, nil
}

func (c Chart) legend(img *image.RGBA, p plotArea) {
	y := p.y0 + 8
	width := 0
	entries := len(c.Series) + len(c.Rules)
	for _, s := range c.Series {
		width = max(width, len(s.Name))
	}
	for _, r := range c.Rules {
		width = max(width, len(r.Name))
	}
	if entries == 0 || width == 0 {
		return
	}
	x := p.x1 - width*charW - 36
	box := image.Rect(x-6, y-4, p.x1-4, y+entries*(lineH+3)+2)
	draw.Draw(img, box, image.White, image.Point{}, draw.Src)
	rect(img, box.Min.X, box.Min.Y, box.Max.X-1, box.Max.Y-1, color.RGBA{180, 180, 180, 255})
	row := func(name string, col color.RGBA, dashed bool) {
		for dx := 0; dx < 22; dx++ {
			if !dashed || dx%8 < 4 {
				img.SetRGBA(x+dx, y+lineH/2, col)
				img.SetRGBA(x+dx, y+lineH/2+1, col)
			}
		}
		text(img, x+28, y+lineH-2, name, color.RGBA{40, 40, 40, 255})
		y += lineH + 3
	}
	for _, s := range c.Series {
		row(s.Name, s.Color, false)
	}
	for _, r := range c.Rules {
		row(r.Name, r.Color, true)
	}
}

// ranges returns the x and y extents over every point, band and rule.
func (c Chart) ranges() (xr, yr [2]float64, err error) {
	xr, yr = [2]float64{math.Inf(1), math.Inf(-1)}, [2]float64{math.Inf(1), math.Inf(-1)}
	add := func(r *[2]float64, v float64) {
		if c.LogY && r == &yr && v <= 0 {
			return
		}
		r[0], r[1] = math.Min(r[0], v), math.Max(r[1], v)
	}
	for _, s := range c.Series {
		if len(s.X) != len(s.Y) || (s.Band != nil && len(s.Band) != len(s.X)) {
			return xr, yr, fmt.Errorf("plot: series %q has %d x, %d y and %d band values", s.Name, len(s.X), len(s.Y), len(s.Band))
		}
		for i := range s.X {
			if math.IsNaN(s.X[i]) || math.IsNaN(s.Y[i]) || math.IsInf(s.X[i], 0) || math.IsInf(s.Y[i], 0) {
				return xr, yr, fmt.Errorf("plot: series %q point %d is not finite", s.Name, i)
			}
			add(&xr, s.X[i])
			add(&yr, s.Y[i])
			if s.Band != nil {
				add(&yr, s.Y[i]+s.Band[i])
				add(&yr, s.Y[i]-s.Band[i])
			}
		}
	}
	for _, r := range c.Rules {
		add(&yr, r.Y)
	}
	if math.IsInf(xr[0], 0) || math.IsInf(yr[0], 0) {
		return xr, yr, errors.New("plot: nothing to draw")
	}
	if xr[0] == xr[1] {
		xr[0], xr[1] = xr[0]-1, xr[1]+1
	}
	// A margin of 5 % of the span (of its log on a log scale) keeps the
	// extreme points and rules off the frame.
	if c.LogY {
		lo, hi := math.Log10(yr[0]), math.Log10(yr[1])
		m := math.Max(0.05*(hi-lo), 0.05)
		yr[0], yr[1] = math.Pow(10, lo-m), math.Pow(10, hi+m)
	} else {
		m := 0.05 * (yr[1] - yr[0])
		if m == 0 {
			m = math.Max(1, math.Abs(yr[0])*0.05)
		}
		yr[0], yr[1] = yr[0]-m, yr[1]+m
	}
	return xr, yr, nil
}

type plotArea struct {
	x0, y0, x1, y1 int
	xr, yr         [2]float64
	log            bool
}

func (p plotArea) px(v float64) int {
	return p.x0 + int(math.Round((v-p.xr[0])/(p.xr[1]-p.xr[0])*float64(p.x1-p.x0)))
}

func (p plotArea) py(v float64) int {
	lo, hi := p.yr[0], p.yr[1]
	if p.log {
		if v <= 0 {
			return p.y1
		}
		v, lo, hi = math.Log10(v), math.Log10(lo), math.Log10(hi)
	}
	y := p.y1 - int(math.Round((v-lo)/(hi-lo)*float64(p.y1-p.y0)))
	return min(max(y, p.y0), p.y1)
}

// yticks are round values on the y axis: 1-2-5 steps on a log scale.
func (p plotArea) yticks() []float64 {
	if !p.log {
		return ticks(p.yr[0], p.yr[1])
	}
	var out []float64
	for e := math.Floor(math.Log10(p.yr[0])); e <= math.Ceil(math.Log10(p.yr[1])); e++ {
		for _, m := range []float64{1, 2, 5} {
			if v := m * math.Pow(10, e); v >= p.yr[0] && v <= p.yr[1] {
				out = append(out, v)
			}
		}
	}
	return out
}

// ticks returns about five round values between lo and hi (steps of 1, 2 or
// 5 times a power of ten).
func ticks(lo, hi float64) []float64 {
	raw := (hi - lo) / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{2, 5, 10} {
		if step < raw {
			step = m * mag
		}
	}
	var out []float64
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		out = append(out, v)
	}
	return out
}

func format(v float64) string {
	if math.Abs(v) >= 1e4 || (v != 0 && math.Abs(v) < 1e-2) {
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}

func text(img *image.RGBA, x, y int, s string, col color.RGBA) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(col), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func hline(img *image.RGBA, x0, x1, y int, col color.RGBA) {
	for x := x0; x <= x1; x++ {
		img.SetRGBA(x, y, col)
	}
}

func vline(img *image.RGBA, x, y0, y1 int, col color.RGBA) {
	for y := y0; y <= y1; y++ {
		img.SetRGBA(x, y, col)
	}
}

func rect(img *image.RGBA, x0, y0, x1, y1 int, col color.RGBA) {
	hline(img, x0, x1, y0, col)
	hline(img, x0, x1, y1, col)
	vline(img, x0, y0, y1, col)
	vline(img, x1, y0, y1, col)
}

// blendV lays col (with its alpha) over the column x from y0 to y1.
func blendV(img *image.RGBA, x, y0, y1 int, col color.RGBA) {
	a := float64(col.A) / 255
	for y := min(y0, y1); y <= max(y0, y1); y++ {
		o := img.RGBAAt(x, y)
		mix := func(b, f uint8) uint8 { return uint8(float64(b)*(1-a) + float64(f)*a) }
		img.SetRGBA(x, y, color.RGBA{mix(o.R, col.R), mix(o.G, col.G), mix(o.B, col.B), 255})
	}
}

// line draws a 2-pixel-wide segment (Bresenham, doubled vertically).
func line(img *image.RGBA, x0, y0, x1, y1 int, col color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		img.SetRGBA(x0, y0, col)
		img.SetRGBA(x0, y0+1, col)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func dot(img *image.RGBA, x, y int, col color.RGBA) {
	for dy := -2; dy <= 2; dy++ {
		for dx := -2; dx <= 2; dx++ {
			if dx*dx+dy*dy <= 5 {
				img.SetRGBA(x+dx, y+dy, col)
			}
		}
	}
}

func abs(v int) int { return max(v, -v) }

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}
