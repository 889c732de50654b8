package features

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/hirez-ml/hirez/engine/imageio"
)

// solid returns n images of one colour, slightly varied per image.
func solid(n, side int, r, g, b uint8) []*imageio.RGB {
	out := make([]*imageio.RGB, n)
	for i := range out {
		m := imageio.NewRGB(side, side)
		for p := 0; p < len(m.Pix); p += 3 {
			m.Pix[p], m.Pix[p+1], m.Pix[p+2] = r+uint8(i), g, b+uint8(i)
		}
		out[i] = m
	}
	return out
}

// TestAgreement: images drawn as their own class agree, the same images
// labelled as the other class do not, and bad calls are errors.
func TestAgreement(t *testing.T) {
	e := randomEncoder(t)
	ctx := context.Background()
	c, err := NewCentroids(ctx, e, [][]*imageio.RGB{noise(1, 8, 16), solid(8, 16, 200, 30, 30)})
	if err != nil {
		t.Fatal(err)
	}
	imgs := append(noise(2, 6, 16), solid(4, 16, 190, 40, 20)...)
	own := []int{0, 0, 0, 0, 0, 0, 1, 1, 1, 1}
	a, err := c.Agreement(ctx, e, imgs, own)
	if err != nil {
		t.Fatal(err)
	}
	if a.Overall != 1 || a.PerClass[0] != 1 || a.PerClass[1] != 1 || a.Chance != 0.5 {
		t.Errorf("own classes: %+v, want all agreeing", a)
	}
	swapped := make([]int, len(own))
	for i, k := range own {
		swapped[i] = 1 - k
	}
	if a, _ := c.Agreement(ctx, e, imgs, swapped); a.Overall != 0 {
		t.Errorf("swapped classes: %+v, want none agreeing", a)
	}
	if a, _ := c.Agreement(ctx, e, imgs[:6], own[:6]); !math.IsNaN(a.PerClass[1]) || a.Overall != 1 {
		t.Errorf("no image of class 1: %+v, want NaN for it", a)
	}

	for _, tc := range []struct {
		imgs    []*imageio.RGB
		classes []int
		want    string
	}{
		{imgs, own[:3], "10 images with 3 classes"},
		{nil, nil, "0 images"},
		{imgs[:1], []int{2}, "class 2 out of range [0, 2)"},
		{imgs[:1], []int{-1}, "class -1 out of range"},
	} {
		if _, err := c.Agreement(ctx, e, tc.imgs, tc.classes); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%d images, classes %v: %v, want %q", len(tc.imgs), tc.classes, err, tc.want)
		}
	}
	if _, err := NewCentroids(ctx, e, [][]*imageio.RGB{noise(1, 2, 16)}); err == nil || !strings.Contains(err.Error(), "at least 2 classes") {
		t.Errorf("one class: %v", err)
	}
	if _, err := NewCentroids(ctx, e, [][]*imageio.RGB{noise(1, 2, 16), nil}); err == nil || !strings.Contains(err.Error(), "class 1 has no images") {
		t.Errorf("an empty class: %v", err)
	}
}
