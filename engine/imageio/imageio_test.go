package imageio

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func encodeStd(t *testing.T, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecodeAlphaOntoWhite(t *testing.T) {
	src := image.NewNRGBA(image.Rect(0, 0, 4, 1))
	src.Set(0, 0, color.NRGBA{255, 0, 0, 255})   // opaque red
	src.Set(1, 0, color.NRGBA{255, 0, 0, 0})     // fully transparent: white
	src.Set(2, 0, color.NRGBA{0, 0, 0, 128})     // half black: mid grey
	src.Set(3, 0, color.NRGBA{10, 200, 30, 255}) // opaque
	img, err := Decode(encodeStd(t, src), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	want := []uint8{255, 0, 0, 255, 255, 255, 127, 127, 127, 10, 200, 30}
	if !bytes.Equal(img.Pix, want) {
		t.Fatalf("pix = %v, want %v", img.Pix, want)
	}
	if img.Gray {
		t.Error("RGBA source marked grey")
	}
}

func TestDecodeGrayAndJPEG(t *testing.T) {
	g := image.NewGray(image.Rect(0, 0, 3, 2))
	for i := range g.Pix {
		g.Pix[i] = uint8(i * 40)
	}
	img, err := Decode(encodeStd(t, g), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if !img.Gray || img.W != 3 || img.H != 2 {
		t.Fatalf("grey decode: %+v", img)
	}
	r, gg, b := img.At(2, 1)
	if r != 200 || gg != 200 || b != 200 {
		t.Errorf("At(2,1) = %d,%d,%d", r, gg, b)
	}

	var jb bytes.Buffer
	src := image.NewRGBA(image.Rect(0, 0, 16, 16))
	for i := range src.Pix {
		src.Pix[i] = 128
	}
	if err := jpeg.Encode(&jb, src, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	img, err = Decode(jb.Bytes(), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if r, _, _ := img.At(5, 5); r < 126 || r > 130 {
		t.Errorf("jpeg grey level %d", r)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := encodeStd(t, image.NewRGBA(image.Rect(0, 0, 40, 30)))
	cases := []struct {
		name string
		data []byte
		lim  Limits
		want error
	}{
		{"empty", nil, DefaultLimits, ErrFormat},
		{"one byte", []byte{0x89}, DefaultLimits, ErrFormat},
		{"header only", good[:40], DefaultLimits, ErrFormat},
		{"truncated", good[:len(good)-20], DefaultLimits, ErrFormat},
		{"garbage", []byte("GIF89a but not really an image at all"), DefaultLimits, ErrFormat},
		{"too wide", good, Limits{MaxSide: 32}, ErrTooLarge},
		{"too many pixels", good, Limits{MaxPixels: 1000}, ErrTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img, err := Decode(c.data, c.lim)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v (img %v)", err, c.want, img != nil)
			}
		})
	}
	// Every prefix of a valid file fails cleanly.
	for n := 0; n < len(good); n++ {
		if _, err := Decode(good[:n], DefaultLimits); err == nil {
			t.Fatalf("prefix %d decoded", n)
		}
	}
	if _, err := DecodeFile(filepath.Join(t.TempDir(), "missing.png"), DefaultLimits); err == nil {
		t.Error("missing file decoded")
	}
}

func TestPNGTextRoundTrip(t *testing.T) {
	img := NewRGB(5, 3)
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	text := []Text{{"seed", "42"}, {"model", "srcnn@sha256:abc"}, {"Comment", "café\nline2"}}
	var b bytes.Buffer
	if err := EncodePNG(&b, img, text...); err != nil {
		t.Fatal(err)
	}
	got, err := ReadText(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(text) {
		t.Fatalf("got %v", got)
	}
	for i := range text {
		if got[i] != text[i] {
			t.Errorf("chunk %d = %+v, want %+v", i, got[i], text[i])
		}
	}
	// The standard decoder (which checks CRCs) still reads the file, pixels intact.
	back, err := Decode(b.Bytes(), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Pix, img.Pix) {
		t.Error("pixels changed")
	}
	// A flipped byte inside a tEXt chunk is caught by the CRC.
	bad := append([]byte(nil), b.Bytes()...)
	i := bytes.Index(bad, []byte("seed"))
	bad[i] = 'S'
	if _, err := ReadText(bytes.NewReader(bad)); !errors.Is(err, ErrFormat) {
		t.Errorf("corrupt tEXt: err = %v", err)
	}
	if _, err := ReadText(bytes.NewReader(b.Bytes()[:b.Len()-5])); err == nil {
		t.Error("truncated file read")
	}
	for _, bt := range []Text{{"", "x"}, {" lead", "x"}, {"k", "a\x00b"}, {"k", "emoji 😀"}} {
		if err := EncodePNG(&bytes.Buffer{}, img, bt); err == nil {
			t.Errorf("bad text %+v accepted", bt)
		}
	}
}

// TestPNGEncoderLevel: the level is honoured (the outputs differ) and every
// level gives back the same pixels and text.
func TestPNGEncoderLevel(t *testing.T) {
	img := NewRGB(64, 64)
	for i := range img.Pix {
		img.Pix[i] = uint8(i/3%64*4 + i%3*(i/192%5))
	}
	text := Text{Key: "seed", Value: "7"}
	sizes := map[png.CompressionLevel]int{}
	for _, level := range []png.CompressionLevel{png.BestSpeed, png.DefaultCompression, png.BestCompression} {
		var b bytes.Buffer
		if err := (PNGEncoder{Compression: level}).Encode(&b, img, text); err != nil {
			t.Fatal(err)
		}
		sizes[level] = b.Len()
		back, err := Decode(b.Bytes(), DefaultLimits)
		if err != nil || !bytes.Equal(back.Pix, img.Pix) {
			t.Fatalf("level %d: pixels changed (err %v)", level, err)
		}
		if got, err := ReadText(bytes.NewReader(b.Bytes())); err != nil || len(got) != 1 || got[0] != text {
			t.Errorf("level %d: text %v, %v", level, got, err)
		}
	}
	if sizes[png.BestSpeed] <= sizes[png.BestCompression] {
		t.Errorf("sizes %v: BestSpeed should cost bytes over BestCompression", sizes)
	}
}

func TestPNGGrayAndFile(t *testing.T) {
	img := NewRGB(2, 2)
	img.Gray = true
	copy(img.Pix, []uint8{9, 9, 9, 50, 50, 50, 0, 0, 0, 255, 255, 255})
	path := filepath.Join(t.TempDir(), "g.png")
	if err := WritePNGFile(path, img, Text{"k", "v"}); err != nil {
		t.Fatal(err)
	}
	back, err := DecodeFile(path, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Gray || !bytes.Equal(back.Pix, img.Pix) {
		t.Errorf("grey round trip: %+v", back)
	}
	f, _ := os.Open(path)
	defer f.Close()
	if tx, err := ReadText(f); err != nil || len(tx) != 1 || tx[0].Value != "v" {
		t.Errorf("text %v %v", tx, err)
	}
	if err := EncodePNG(&bytes.Buffer{}, &RGB{}); err == nil {
		t.Error("empty image encoded")
	}
}

func TestCHWRoundTrip(t *testing.T) {
	img := NewRGB(256, 1)
	for x := 0; x < 256; x++ {
		img.Set(x, 0, uint8(x), uint8(255-x), uint8(x/2))
	}
	for _, c := range []struct {
		name string
		to   func(*RGB) ([]float32, error)
		from func([]float32, int, int) (*RGB, error)
		lo   float32
	}{
		{"01", ToCHW01, FromCHW01, 0},
		{"signed", ToCHWSigned, FromCHWSigned, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			chw, err := c.to(img)
			if err != nil {
				t.Fatal(err)
			}
			if chw[0] != c.lo || chw[255] != 1 || chw[256] != 1 {
				t.Errorf("range: %v %v %v", chw[0], chw[255], chw[256])
			}
			back, err := c.from(chw, 256, 1)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back.Pix, img.Pix) {
				t.Error("round trip changed pixels")
			}
		})
	}
	// clamping and rounding: 0.5/255 rounds away from zero to 1; out of range clamps.
	chw := []float32{-3, 0.5 / 255, 2, 1.49 / 255, 0.998, 7, 0, 0, 0}
	img2, err := FromCHW01(chw, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint8{0, 1, 0, 1, 254, 0, 255, 255, 0}; !bytes.Equal(img2.Pix, want) {
		t.Errorf("FromCHW01 = %v, want %v", img2.Pix, want)
	}
	if _, err := FromCHWSigned([]float32{float32(math.NaN()), 0, 0}, 1, 1); err == nil {
		t.Error("NaN accepted")
	}
	if _, err := FromCHW01(nil, 0, 0); err == nil {
		t.Error("zero size accepted")
	}
	if _, err := FromCHW01(make([]float32, 5), 1, 1); err == nil {
		t.Error("wrong length accepted")
	}
	if _, err := ToCHW01(&RGB{W: 2, H: 2}); err == nil {
		t.Error("short Pix accepted")
	}
}

func TestGrid(t *testing.T) {
	a, b := NewRGB(2, 2), NewRGB(1, 3)
	for i := range a.Pix {
		a.Pix[i] = 10
	}
	for i := range b.Pix {
		b.Pix[i] = 20
	}
	g, err := Grid([]*RGB{a, b, a}, GridOptions{Cols: 2, Pad: 1, Background: [3]uint8{255, 255, 255}})
	if err != nil {
		t.Fatal(err)
	}
	// cells 2×3, 2 cols, 2 rows, pad 1: 2·2+3 = 7 wide, 2·3+3 = 9 high
	if g.W != 7 || g.H != 9 {
		t.Fatalf("grid %d×%d", g.W, g.H)
	}
	check := func(x, y int, v uint8) {
		t.Helper()
		if r, _, _ := g.At(x, y); r != v {
			t.Errorf("(%d,%d) = %d, want %d", x, y, r, v)
		}
	}
	check(0, 0, 255)
	check(1, 1, 10)
	check(2, 2, 10)
	check(1, 3, 255) // below a 2-high image in a 3-high cell
	check(4, 1, 20)
	check(4, 3, 20)
	check(5, 1, 255)
	check(1, 5, 10)
	check(4, 5, 255) // empty fourth cell
	if _, err := Grid(nil, GridOptions{}); err == nil {
		t.Error("empty grid accepted")
	}
	if _, err := Grid([]*RGB{{}}, GridOptions{}); err == nil {
		t.Error("zero-size image accepted")
	}
}

func TestCrop(t *testing.T) {
	img := NewRGB(4, 3)
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	c, err := img.CenterCrop(2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r, _, _ := c.At(0, 0); r != uint8((1*4+1)*3) {
		t.Errorf("crop origin %d", r)
	}
	if _, err := img.Crop(3, 0, 2, 1); err == nil {
		t.Error("out-of-bounds crop accepted")
	}
}

// testdata/*.webp were written by PIL (/usr/bin/python3): a 16×12 RGBA image, red
// (200,30,30,255) on the left half and (0,0,255,0) on the right, saved as
// im.save("alpha.webp", lossless=True) and im.convert("RGB").save("lossy.webp",
// quality=90).
func TestDecodeWebP(t *testing.T) {
	img, err := DecodeFile("testdata/alpha.webp", DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if img.W != 16 || img.H != 12 {
		t.Fatalf("size %d×%d", img.W, img.H)
	}
	if r, g, b := img.At(2, 5); r != 200 || g != 30 || b != 30 {
		t.Errorf("opaque pixel %d,%d,%d", r, g, b)
	}
	if r, g, b := img.At(12, 5); r != 255 || g != 255 || b != 255 {
		t.Errorf("transparent pixel %d,%d,%d, want white", r, g, b)
	}
	img, err = DecodeFile("testdata/lossy.webp", DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if r, _, _ := img.At(2, 5); r < 180 {
		t.Errorf("lossy red %d", r)
	}
	data, _ := os.ReadFile("testdata/lossy.webp")
	for _, n := range []int{1, 12, 30, len(data) - 3} {
		if _, err := Decode(data[:n], DefaultLimits); !errors.Is(err, ErrFormat) {
			t.Errorf("webp truncated to %d: %v", n, err)
		}
	}
}

func TestFlipH(t *testing.T) {
	m := NewRGB(3, 2)
	for i := range m.Pix {
		m.Pix[i] = uint8(i)
	}
	m.FlipH()
	want := []uint8{6, 7, 8, 3, 4, 5, 0, 1, 2, 15, 16, 17, 12, 13, 14, 9, 10, 11}
	for i, v := range want {
		if m.Pix[i] != v {
			t.Fatalf("after FlipH: %v, want %v", m.Pix, want)
		}
	}
}
