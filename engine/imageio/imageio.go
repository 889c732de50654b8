// Package imageio reads and writes the images hirez trains on and serves: PNG, JPEG
// and WebP in, PNG (with tEXt provenance chunks) out, always through one 8-bit RGB
// type, plus the conversions to and from the float32 CHW tensors the engine uses.
//
// Transparency: emoji sources have alpha. Every decoded image is composited onto an
// opaque white background (out = a·c + (1−a)·255, on premultiplied 16-bit values,
// rounded half up), because emoji are shown on white and a model must never see the
// arbitrary colour that sits under alpha = 0.
package imageio

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // registers JPEG with image.Decode
	_ "image/png"  // registers PNG with image.Decode
	"io"
	"os"

	_ "golang.org/x/image/webp" // registers WebP with image.Decode
)

// RGB is an 8-bit RGB image stored row-major, HWC: pixel (x, y) channel c is
// Pix[(y*W+x)*3+c].
//
// Gray records that the source was a single-channel image (R = G = B). Metrics use
// such an image as its own luma instead of pushing it through the colour formula,
// which is how the published Set14 numbers are computed.
type RGB struct {
	W, H int
	Pix  []uint8
	Gray bool
}

// NewRGB returns a black w×h image. It panics on a negative size, like make does.
func NewRGB(w, h int) *RGB {
	return &RGB{W: w, H: h, Pix: make([]uint8, w*h*3)}
}

// At returns the three channels of pixel (x, y).
func (m *RGB) At(x, y int) (r, g, b uint8) {
	i := (y*m.W + x) * 3
	return m.Pix[i], m.Pix[i+1], m.Pix[i+2]
}

// Set writes pixel (x, y).
func (m *RGB) Set(x, y int, r, g, b uint8) {
	i := (y*m.W + x) * 3
	m.Pix[i], m.Pix[i+1], m.Pix[i+2] = r, g, b
}

// Clone returns a deep copy.
func (m *RGB) Clone() *RGB {
	c := *m
	c.Pix = append([]uint8(nil), m.Pix...)
	return &c
}

// Validate checks that the size is positive and Pix has exactly W·H·3 bytes.
func (m *RGB) Validate() error {
	if m == nil {
		return errors.New("imageio: nil image")
	}
	if m.W <= 0 || m.H <= 0 {
		return fmt.Errorf("imageio: empty image %d×%d", m.W, m.H)
	}
	if len(m.Pix) != m.W*m.H*3 {
		return fmt.Errorf("imageio: %d×%d image has %d bytes, want %d", m.W, m.H, len(m.Pix), m.W*m.H*3)
	}
	return nil
}

// Crop returns a copy of the w×h rectangle whose top-left corner is (x, y).
func (m *RGB) Crop(x, y, w, h int) (*RGB, error) {
	if w <= 0 || h <= 0 || x < 0 || y < 0 || x+w > m.W || y+h > m.H {
		return nil, fmt.Errorf("imageio: crop %d×%d at (%d,%d) outside %d×%d image", w, h, x, y, m.W, m.H)
	}
	out := NewRGB(w, h)
	out.Gray = m.Gray
	for r := 0; r < h; r++ {
		copy(out.Pix[r*w*3:(r+1)*w*3], m.Pix[((y+r)*m.W+x)*3:])
	}
	return out, nil
}

// PadSymmetric returns the image extended by p pixels on every side with its
// mirror image, the edge pixel repeated (MATLAB's "symmetric"; the pattern
// repeats for p larger than the image).
func (m *RGB) PadSymmetric(p int) *RGB {
	w, h := m.W+2*p, m.H+2*p
	out := NewRGB(w, h)
	out.Gray = m.Gray
	for y := range h {
		sy := symmetric(y-p, m.H)
		for x := range w {
			i, j := (y*w+x)*3, (sy*m.W+symmetric(x-p, m.W))*3
			copy(out.Pix[i:i+3], m.Pix[j:j+3])
		}
	}
	return out
}

// symmetric maps i to [0, n) by mirroring at the edges, edge included:
// …, 1, 0 | 0, 1, …, n−1 | n−1, n−2, ….
func symmetric(i, n int) int {
	i %= 2 * n
	if i < 0 {
		i += 2 * n
	}
	if i >= n {
		i = 2*n - 1 - i
	}
	return i
}

// FlipH mirrors the image left to right, in place.
func (m *RGB) FlipH() {
	for y := 0; y < m.H; y++ {
		row := m.Pix[y*m.W*3 : (y+1)*m.W*3]
		for a, b := 0, m.W-1; a < b; a, b = a+1, b-1 {
			for c := 0; c < 3; c++ {
				row[a*3+c], row[b*3+c] = row[b*3+c], row[a*3+c]
			}
		}
	}
}

// CenterCrop returns the centred w×h window (the extra pixel of an odd margin goes
// to the right / bottom).
func (m *RGB) CenterCrop(w, h int) (*RGB, error) {
	return m.Crop((m.W-w)/2, (m.H-h)/2, w, h)
}

// Image returns the image as an *image.NRGBA (opaque), for the standard library.
func (m *RGB) Image() *image.NRGBA {
	out := image.NewNRGBA(image.Rect(0, 0, m.W, m.H))
	for i, j := 0, 0; i < len(m.Pix); i, j = i+3, j+4 {
		out.Pix[j], out.Pix[j+1], out.Pix[j+2], out.Pix[j+3] = m.Pix[i], m.Pix[i+1], m.Pix[i+2], 255
	}
	return out
}

// Limits bound what Decode accepts. They are checked on the header before any pixel
// is decoded, so a hostile file cannot make the decoder allocate gigabytes.
type Limits struct {
	MaxSide   int // largest width or height; 0 means DefaultLimits.MaxSide
	MaxPixels int // largest width·height; 0 means DefaultLimits.MaxPixels
}

// DefaultLimits accept any reasonable photo (up to 16384 px a side, 64 Mpx).
var DefaultLimits = Limits{MaxSide: 16384, MaxPixels: 64 << 20}

// ErrTooLarge is wrapped by errors for images over the Limits.
var ErrTooLarge = errors.New("image too large")

// ErrFormat is wrapped by errors for data that is not a decodable PNG, JPEG or WebP
// (unknown format, truncated or corrupt file).
var ErrFormat = errors.New("not a valid image")

func (l Limits) check(w, h int) error {
	side, px := l.MaxSide, l.MaxPixels
	if side <= 0 {
		side = DefaultLimits.MaxSide
	}
	if px <= 0 {
		px = DefaultLimits.MaxPixels
	}
	switch {
	case w <= 0 || h <= 0:
		return fmt.Errorf("imageio: %w: size %d×%d", ErrFormat, w, h)
	case w > side || h > side:
		return fmt.Errorf("imageio: %w: %d×%d exceeds max side %d", ErrTooLarge, w, h, side)
	case int64(w)*int64(h) > int64(px):
		return fmt.Errorf("imageio: %w: %d×%d exceeds %d pixels", ErrTooLarge, w, h, px)
	}
	return nil
}

// Decode reads a PNG, JPEG or WebP image from data after checking its header against
// lim. Truncated or corrupt data gives an error wrapping ErrFormat, never a panic.
func Decode(data []byte, lim Limits) (img *RGB, err error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("imageio: %w: header (%d bytes): %v", ErrFormat, len(data), err)
	}
	if err := lim.check(cfg.Width, cfg.Height); err != nil {
		return nil, err
	}
	// The standard decoders return errors for bad input; the recover is a last line
	// of defence so one corrupt file in a dataset can never take a process down.
	defer func() {
		if r := recover(); r != nil {
			img, err = nil, fmt.Errorf("imageio: %w: %s decoder panicked: %v", ErrFormat, format, r)
		}
	}()
	src, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("imageio: %w: %s: %v", ErrFormat, format, err)
	}
	return FromImage(src)
}

// DecodeReader reads all of r (at most maxBytes; 0 means 256 MiB) and decodes it.
func DecodeReader(r io.Reader, lim Limits, maxBytes int64) (*RGB, error) {
	if maxBytes <= 0 {
		maxBytes = 256 << 20
	}
	data, err := io.ReadAll(io.LimitReader(r, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("imageio: read: %w", err)
	}
	if int64(len(data)) > maxBytes {
		return nil, fmt.Errorf("imageio: %w: more than %d bytes", ErrTooLarge, maxBytes)
	}
	return Decode(data, lim)
}

// DecodeFile reads and decodes the image file at path.
func DecodeFile(path string, lim Limits) (*RGB, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("imageio: %w", err)
	}
	defer f.Close()
	img, err := DecodeReader(f, lim, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// FromImage converts any image.Image to RGB, compositing alpha onto white.
func FromImage(src image.Image) (*RGB, error) {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("imageio: empty image %d×%d", w, h)
	}
	out := NewRGB(w, h)
	switch s := src.(type) {
	case *image.Gray:
		out.Gray = true
		for y := 0; y < h; y++ {
			row := s.Pix[y*s.Stride : y*s.Stride+w]
			for x, v := range row {
				i := (y*w + x) * 3
				out.Pix[i], out.Pix[i+1], out.Pix[i+2] = v, v, v
			}
		}
	case *image.RGBA:
		compositeRows(out, s.Pix, s.Stride, true)
	case *image.NRGBA:
		compositeRows(out, s.Pix, s.Stride, false)
	case *image.YCbCr:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				c := s.YCbCrAt(b.Min.X+x, b.Min.Y+y)
				r, g, bb := color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
				out.Set(x, y, r, g, bb)
			}
		}
	default:
		m := src.ColorModel()
		out.Gray = m == color.GrayModel || m == color.Gray16Model
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				r, g, bb, a := src.At(b.Min.X+x, b.Min.Y+y).RGBA()
				out.Set(x, y, over16(r, a), over16(g, a), over16(bb, a))
			}
		}
	}
	return out, nil
}

// compositeRows composites 8-bit RGBA rows (premultiplied or not) onto white.
func compositeRows(out *RGB, pix []uint8, stride int, premul bool) {
	for y := 0; y < out.H; y++ {
		row := pix[y*stride : y*stride+out.W*4]
		for x := 0; x < out.W; x++ {
			r, g, b, a := uint32(row[x*4]), uint32(row[x*4+1]), uint32(row[x*4+2]), uint32(row[x*4+3])
			if !premul {
				// premultiply in 16 bits exactly as color.NRGBA.RGBA does
				r, g, b = r*a*0x101/0xff, g*a*0x101/0xff, b*a*0x101/0xff
				a *= 0x101
			} else {
				r, g, b, a = r*0x101, g*0x101, b*0x101, a*0x101
			}
			out.Set(x, y, over16(r, a), over16(g, a), over16(b, a))
		}
	}
}

// over16 composites one premultiplied 16-bit channel c with alpha a onto white and
// returns it in 8 bits, rounded half up: (c + (0xffff − a)) / 257.
func over16(c, a uint32) uint8 {
	v := c + (0xffff - a)
	return uint8((v*255 + 0x7fff) / 0xffff)
}
