package imageio

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/hirez-ml/hirez/engine/atomicfile"
)

// Text is one PNG tEXt chunk: a keyword and its value (provenance such as the seed
// and the model digests). PNG stores both in Latin-1; EncodePNG converts from and
// ReadText back to UTF-8, so only runes up to U+00FF can be stored.
type Text struct {
	Key, Value string
}

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// EncodePNG writes img as an 8-bit PNG (grey when img.Gray, else RGB) with one tEXt
// chunk per entry of text, in order, right after IHDR, at the standard library's
// default compression. See PNGEncoder for a faster one.
func EncodePNG(w io.Writer, img *RGB, text ...Text) error {
	return PNGEncoder{}.Encode(w, img, text...)
}

// PNGEncoder encodes like EncodePNG at a chosen zlib compression level. A server
// that encodes every response wants png.BestSpeed: at 256² it is about 4× faster
// than the default for about 5 % more bytes (docs/serving.md), and PNG stays
// lossless either way. The zero value is png.DefaultCompression.
type PNGEncoder struct {
	Compression png.CompressionLevel
	// BufferPool, when set, lends the encoder its zlib writer and row
	// buffers. Without one every Encode allocates them afresh, about 1.2 MiB
	// whatever the image's size, which costs more than encoding a small
	// image; a server encoding every response shares one (PNGBufferPool).
	BufferPool png.EncoderBufferPool
}

// PNGBufferPool is a png.EncoderBufferPool over a sync.Pool, safe for
// concurrent encoders; the zero value is ready to use. Its idle buffers go
// at the next garbage collections, as a sync.Pool's do.
type PNGBufferPool struct{ p sync.Pool }

// Get returns an idle buffer, or nil for the encoder to make one.
func (p *PNGBufferPool) Get() *png.EncoderBuffer {
	b, _ := p.p.Get().(*png.EncoderBuffer)
	return b
}

// Put keeps b for the next Get.
func (p *PNGBufferPool) Put(b *png.EncoderBuffer) { p.p.Put(b) }

// Encode writes img with text chunks as EncodePNG does. The standard encoder
// writes no tEXt chunks, so they are spliced into its output with their own CRCs.
func (e PNGEncoder) Encode(w io.Writer, img *RGB, text ...Text) error {
	if err := img.Validate(); err != nil {
		return err
	}
	chunks := make([][]byte, 0, len(text))
	for _, t := range text {
		c, err := textChunk(t)
		if err != nil {
			return err
		}
		chunks = append(chunks, c)
	}
	var src image.Image = img.Image()
	if img.Gray {
		g := image.NewGray(image.Rect(0, 0, img.W, img.H))
		for i := range g.Pix {
			g.Pix[i] = img.Pix[i*3]
		}
		src = g
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: e.Compression, BufferPool: e.BufferPool}
	if err := enc.Encode(&buf, src); err != nil {
		return fmt.Errorf("imageio: encode png: %w", err)
	}
	data := buf.Bytes()
	// signature (8) + IHDR: length (4) + type (4) + 13 data bytes + CRC (4)
	const afterIHDR = 8 + 4 + 4 + 13 + 4
	if len(data) < afterIHDR || string(data[12:16]) != "IHDR" {
		return errors.New("imageio: encode png: unexpected encoder output")
	}
	if _, err := w.Write(data[:afterIHDR]); err != nil {
		return err
	}
	for _, c := range chunks {
		if _, err := w.Write(c); err != nil {
			return err
		}
	}
	_, err := w.Write(data[afterIHDR:])
	return err
}

// textChunk builds a complete tEXt chunk (length, type, data, CRC).
func textChunk(t Text) ([]byte, error) {
	if n := len(t.Key); n == 0 || n > 79 {
		return nil, fmt.Errorf("imageio: tEXt keyword %q: length must be 1–79", t.Key)
	}
	if strings.HasPrefix(t.Key, " ") || strings.HasSuffix(t.Key, " ") || strings.Contains(t.Key, "  ") {
		return nil, fmt.Errorf("imageio: tEXt keyword %q: no leading, trailing or double spaces", t.Key)
	}
	for _, r := range t.Key {
		if !(r >= 32 && r <= 126 || r >= 161 && r <= 255) {
			return nil, fmt.Errorf("imageio: tEXt keyword %q: only printable Latin-1", t.Key)
		}
	}
	key, err := toLatin1(t.Key)
	if err != nil {
		return nil, err
	}
	val, err := toLatin1(t.Value)
	if err != nil {
		return nil, err
	}
	if bytes.IndexByte(val, 0) >= 0 {
		return nil, fmt.Errorf("imageio: tEXt %q: value contains NUL", t.Key)
	}
	body := make([]byte, 0, 4+len(key)+1+len(val))
	body = append(body, "tEXt"...)
	body = append(body, key...)
	body = append(body, 0)
	body = append(body, val...)
	c := make([]byte, 4, 4+len(body)+4)
	binary.BigEndian.PutUint32(c, uint32(len(body)-4))
	c = append(c, body...)
	return binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE(body)), nil
}

func toLatin1(s string) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff || r == utf8.RuneError {
			return nil, fmt.Errorf("imageio: tEXt %q: rune %U is not Latin-1", s, r)
		}
		out = append(out, byte(r))
	}
	return out, nil
}

// ReadText returns the tEXt chunks of a PNG stream in file order. It checks the
// signature and every chunk's CRC and stops at IEND; it does not decode pixels.
func ReadText(r io.Reader) ([]Text, error) {
	sig := make([]byte, 8)
	if _, err := io.ReadFull(r, sig); err != nil || !bytes.Equal(sig, pngSignature) {
		return nil, fmt.Errorf("imageio: %w: not a PNG", ErrFormat)
	}
	var out []Text
	hdr := make([]byte, 8)
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			return nil, fmt.Errorf("imageio: %w: truncated PNG (no IEND): %v", ErrFormat, err)
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		typ := string(hdr[4:8])
		if n > 1<<30 {
			return nil, fmt.Errorf("imageio: %w: chunk %q length %d", ErrFormat, typ, n)
		}
		crc := crc32.NewIEEE()
		crc.Write(hdr[4:8])
		var body []byte
		if typ == "tEXt" {
			// Read, not allocated up front: the length is the file's word,
			// and a 20-byte file may claim a gigabyte.
			var err error
			if body, err = io.ReadAll(io.LimitReader(r, int64(n))); err != nil || len(body) != int(n) {
				return nil, fmt.Errorf("imageio: %w: truncated tEXt chunk", ErrFormat)
			}
			crc.Write(body)
		} else if _, err := io.CopyN(crc, r, int64(n)); err != nil {
			return nil, fmt.Errorf("imageio: %w: truncated %q chunk", ErrFormat, typ)
		}
		var sum [4]byte
		if _, err := io.ReadFull(r, sum[:]); err != nil {
			return nil, fmt.Errorf("imageio: %w: truncated %q chunk CRC", ErrFormat, typ)
		}
		if binary.BigEndian.Uint32(sum[:]) != crc.Sum32() {
			return nil, fmt.Errorf("imageio: %w: bad CRC in %q chunk", ErrFormat, typ)
		}
		switch typ {
		case "tEXt":
			k, v, ok := bytes.Cut(body, []byte{0})
			if !ok {
				return nil, fmt.Errorf("imageio: %w: tEXt chunk without separator", ErrFormat)
			}
			out = append(out, Text{Key: fromLatin1(k), Value: fromLatin1(v)})
		case "IEND":
			return out, nil
		}
	}
}

func fromLatin1(b []byte) string {
	rs := make([]rune, len(b))
	for i, c := range b {
		rs[i] = rune(c)
	}
	return string(rs)
}

// WritePNGFile writes img to path atomically (a temporary file in the same directory,
// then a rename), so a reader never sees half a file.
func WritePNGFile(path string, img *RGB, text ...Text) error {
	err := atomicfile.Write(path, func(w *bufio.Writer) error { return EncodePNG(w, img, text...) })
	if err != nil {
		return fmt.Errorf("imageio: %w", err)
	}
	return nil
}
