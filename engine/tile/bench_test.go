package tile

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/model"
)

// BenchmarkTiledVsWhole upscales one image with the bundled model whole and
// in DefaultSide tiles, alternately in every iteration, and reports the
// ratio of the times (tiled/whole): the price of the halo and the extra
// calls, measured side by side so that the machine's load cancels out.
//
//	go test -run '^$' -bench TiledVsWhole -benchtime 5x ./tile
func BenchmarkTiledVsWhole(b *testing.B) {
	be, err := choose.Open("")
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	// One network each: a network re-allocates its buffers when the input
	// shape changes, so sharing one would charge both sides for switching.
	net, _, err := model.Open(bundled, be)
	if err != nil {
		b.Fatal(err)
	}
	defer net.Free()
	wnet, _, err := model.Open(bundled, be)
	if err != nil {
		b.Fatal(err)
	}
	defer wnet.Free()
	tl, err := New(net.Config(), DefaultSide)
	if err != nil {
		b.Fatal(err)
	}
	whole, err := New(net.Config(), 0)
	if err != nil {
		b.Fatal(err)
	}
	for _, side := range []int{512, 1024} {
		img := picture(side, side, 1)
		b.Run(fmt.Sprintf("%s/%d", be.Name(), side), func(b *testing.B) {
			ctx := context.Background()
			// Once each first: the network's buffers and oneDNN primitives
			// for these shapes.
			if _, err := whole.Upscale(ctx, img, Net(wnet)); err != nil {
				b.Fatal(err)
			}
			if _, err := tl.Upscale(ctx, img, Net(net)); err != nil {
				b.Fatal(err)
			}
			var tw, tt time.Duration
			for range b.N {
				start := time.Now()
				if _, err := whole.Upscale(ctx, img, Net(wnet)); err != nil {
					b.Fatal(err)
				}
				mid := time.Now()
				if _, err := tl.Upscale(ctx, img, Net(net)); err != nil {
					b.Fatal(err)
				}
				tw, tt = tw+mid.Sub(start), tt+time.Since(mid)
			}
			b.ReportMetric(float64(tt)/float64(tw), "tiled/whole")
			b.ReportMetric(float64(len(tl.Tiles(side, side))), "tiles")
		})
	}
}
