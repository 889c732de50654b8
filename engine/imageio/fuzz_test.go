package imageio

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"testing"
)

// fuzzLimits keep one input cheap to decode; the limits themselves are part
// of what is checked (an image over them must be refused, never decoded).
var fuzzLimits = Limits{MaxSide: 512, MaxPixels: 1 << 16}

// FuzzDecode feeds Decode (every client image and dataset file goes through
// it) and ReadText arbitrary bytes: they must return an image or an error
// wrapping ErrFormat or ErrTooLarge, never panic, and an accepted image must
// survive EncodePNG → Decode unchanged (PNG is lossless, and RGB has no alpha
// left to composite).
func FuzzDecode(f *testing.F) {
	for _, m := range fuzzSeedImages() {
		var b bytes.Buffer
		if err := png.Encode(&b, m); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	var j bytes.Buffer
	if err := jpeg.Encode(&j, fuzzSeedImages()[0], &jpeg.Options{Quality: 50}); err != nil {
		f.Fatal(err)
	}
	f.Add(j.Bytes())
	var tx bytes.Buffer
	if err := EncodePNG(&tx, NewRGB(2, 2), Text{Key: "hirez:seed", Value: "7"}); err != nil {
		f.Fatal(err)
	}
	f.Add(tx.Bytes())
	for _, name := range []string{"testdata/alpha.webp", "testdata/lossy.webp", "../model/testdata/photo12.png"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := ReadText(bytes.NewReader(data)); err != nil && !errors.Is(err, ErrFormat) {
			t.Fatalf("ReadText: error not wrapping ErrFormat: %v", err)
		}
		img, err := Decode(data, fuzzLimits)
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Decode: error wraps neither ErrFormat nor ErrTooLarge: %v", err)
			}
			return
		}
		if err := img.Validate(); err != nil {
			t.Fatalf("Decode returned an invalid image: %v", err)
		}
		if img.W > fuzzLimits.MaxSide || img.H > fuzzLimits.MaxSide || img.W*img.H > fuzzLimits.MaxPixels {
			t.Fatalf("Decode returned %d×%d, over %+v", img.W, img.H, fuzzLimits)
		}
		var b bytes.Buffer
		if err := EncodePNG(&b, img); err != nil {
			t.Fatalf("EncodePNG of a decoded image: %v", err)
		}
		back, err := Decode(b.Bytes(), fuzzLimits)
		if err != nil {
			t.Fatalf("Decode of our own PNG: %v", err)
		}
		if back.W != img.W || back.H != img.H || !bytes.Equal(back.Pix, img.Pix) {
			t.Fatalf("PNG round trip changed the %d×%d image", img.W, img.H)
		}
	})
}

// fuzzSeedImages are small images of the colour models the decoders return
// (each takes its own path in FromImage).
func fuzzSeedImages() []image.Image {
	r := image.Rect(0, 0, 5, 3)
	rgba, nrgba, gray, gray16 := image.NewRGBA(r), image.NewNRGBA(r), image.NewGray(r), image.NewGray16(r)
	pal := image.NewPaletted(r, color.Palette{color.White, color.NRGBA{200, 10, 10, 128}, color.Black})
	for y := range 3 {
		for x := range 5 {
			v := uint8(x*50 + y*20)
			rgba.Set(x, y, color.RGBA{v, v / 2, 255 - v, 255})
			nrgba.Set(x, y, color.NRGBA{v, 30, 90, v})
			gray.Set(x, y, color.Gray{v})
			gray16.Set(x, y, color.Gray16{uint16(v) * 257})
			pal.SetColorIndex(x, y, uint8((x+y)%3))
		}
	}
	return []image.Image{rgba, nrgba, gray, gray16, pal}
}
