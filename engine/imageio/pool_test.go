package imageio

import (
	"bytes"
	"fmt"
	"image/png"
	"sync"
	"testing"
)

// TestPNGBufferPool: a pooled encoder writes the same bytes as a fresh one,
// from many goroutines at once (run with -race), and a warm pool stops the
// per-image allocation of the zlib writer.
func TestPNGBufferPool(t *testing.T) {
	text := Text{Key: "hirez:seed", Value: "7"}
	fresh := PNGEncoder{Compression: png.BestSpeed}
	pooled := PNGEncoder{Compression: png.BestSpeed, BufferPool: &PNGBufferPool{}}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for _, side := range []int{32, 64, 128, 256} {
				img := NewRGB(side, side)
				for i := range img.Pix {
					img.Pix[i] = uint8(i*7 + g)
				}
				var want, got bytes.Buffer
				if err := fresh.Encode(&want, img, text); err != nil {
					t.Error(err)
					return
				}
				if err := pooled.Encode(&got, img, text); err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(want.Bytes(), got.Bytes()) {
					t.Errorf("goroutine %d, %d px: pooled bytes differ", g, side)
				}
			}
		})
	}
	wg.Wait()
	img := NewRGB(32, 32)
	var buf bytes.Buffer
	_ = pooled.Encode(&buf, img) // warm
	perEncode := func(e PNGEncoder) float64 {
		return testing.AllocsPerRun(20, func() {
			buf.Reset()
			_ = e.Encode(&buf, img)
		})
	}
	if p, f := perEncode(pooled), perEncode(fresh); p >= f {
		t.Errorf("allocations per 32² encode: pooled %v, fresh %v", p, f)
	}
}

// BenchmarkPNGEncoder/<side>/<fresh|pooled>: BestSpeed with and without a
// buffer pool, the gateway's encoder for every preview and final image.
func BenchmarkPNGEncoder(b *testing.B) {
	for _, side := range []int{32, 64, 128, 256} {
		img := NewRGB(side, side)
		for i := range img.Pix {
			img.Pix[i] = uint8(i/3%side*4 + i%3*(i/192%5))
		}
		for _, name := range []string{"fresh", "pooled"} {
			e := PNGEncoder{Compression: png.BestSpeed}
			if name == "pooled" {
				e.BufferPool = &PNGBufferPool{}
			}
			b.Run(fmt.Sprintf("%d/%s", side, name), func(b *testing.B) {
				b.ReportAllocs()
				var buf bytes.Buffer
				for b.Loop() {
					buf.Reset()
					if err := e.Encode(&buf, img); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
