package backendtest

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/hirez-ml/hirez/engine/backend"
)

// randomShapeCount is how many random shapes randomShapes draws per op family.
const randomShapeCount = 48

// randomConvMaxFLOPs bounds one random convolution, so that the reference
// backend (plain loops) checks every case in well under a second.
const randomConvMaxFLOPs = 30e6

// channelChoices mixes what native backends treat differently: 1 and 3
// (image channels, padded to a whole vector block inside), odd counts that
// leave a tail in every SIMD width, exact blocks (8, 16) and large layers
// (64…256) that pick blocked weight layouts and other kernels.
var channelChoices = []int{1, 2, 3, 5, 7, 8, 13, 16, 17, 32, 64, 128, 256}

// sideChoices include sides that no 8- or 16-wide block divides, and 1 and 2,
// where oneDNN switches to gemm-based kernels.
var sideChoices = []int{1, 2, 3, 4, 5, 7, 8, 9, 11, 13, 16, 17, 19, 23, 32}

// RandomConvShapes draws n valid convolutions from rng: channels, kernel
// (1…9, odd and even), stride 1 or 2, padding 0…(k−1)/2, batch 1, 2, 3 or 5,
// and non-square sides, each within randomConvMaxFLOPs.
func RandomConvShapes(rng *rand.Rand, n int) []backend.Conv2D {
	pick := func(s []int) int { return s[rng.IntN(len(s))] }
	var cs []backend.Conv2D
	for len(cs) < n {
		k := pick([]int{1, 2, 3, 3, 3, 4, 5, 7, 9})
		c := backend.Conv2D{
			In:     backend.Dims{N: pick([]int{1, 2, 3, 5}), C: pick(channelChoices), H: pick(sideChoices), W: pick(sideChoices)},
			Out:    pick(channelChoices),
			KH:     k,
			KW:     k,
			Stride: 1 + rng.IntN(2),
			Pad:    rng.IntN((k-1)/2 + 1),
		}
		if rng.IntN(5) == 0 { // now and then a non-square kernel
			c.KW = pick([]int{1, 3, 5})
			c.Pad = min(c.Pad, (min(c.KH, c.KW)-1)/2)
		}
		if c.Validate() != nil || c.FLOPs() > randomConvMaxFLOPs {
			continue
		}
		cs = append(cs, c)
	}
	return cs
}

// randomShapes is the randomized part of Parity: convolutions forward and
// backward, batch norm, max pooling and upsampling on shapes drawn from a
// fixed seed, so a failure names a shape that reproduces.
func (e *env) randomShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(e.opt.Seed, 2))
	n := randomShapeCount
	if e.opt.Short {
		n /= 4
	}
	for _, c := range RandomConvShapes(rng, n) {
		e.convCase(t, c)
	}
	pick := func(s []int) int { return s[rng.IntN(len(s))] }
	for range n {
		d := backend.Dims{N: pick([]int{1, 2, 3, 5}), C: pick(channelChoices), H: pick(sideChoices), W: pick(sideChoices)}
		if d.Size() > 1<<17 {
			continue
		}
		e.batchnormCase(t, d)
		x, y := e.rand(t, d.Size()), e.rand(t, 4*d.Size())
		e.run(t, fmt.Sprintf("upsample %v", d), func(b backend.Backend, s int) error { return b.Upsample2x(d, x[s], y[s]) }, y)
		e.run(t, fmt.Sprintf("upsample backward %v", d), func(b backend.Backend, s int) error { return b.Upsample2xBackward(d, y[s], x[s]) }, x)
		pd := d
		pd.H, pd.W = 2*d.H, 2*d.W // max pooling takes even sides
		e.maxpoolCase(t, pd)
	}
}

// threads runs ops on one OS thread and then again on another. Go runs each
// cgo call on whichever OS thread is free, so a native backend must not keep
// per-thread state between the call that prepared an op and the call that runs
// it (oneDNN's default scratchpad is such state: a primitive created on one
// thread and executed on another read a NULL scratchpad and crashed on AVX2).
// The shapes are the ones whose kernels need scratch space on some ISA.
func (e *env) threads(t *testing.T) {
	shapes := []backend.Conv2D{
		{In: backend.Dims{N: 2, C: 128, H: 2, W: 2}, Out: 256, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{In: backend.Dims{N: 2, C: 3, H: 8, W: 8}, Out: 64, KH: 3, KW: 3, Stride: 1, Pad: 1},
		{In: backend.Dims{N: 1, C: 64, H: 9, W: 7}, Out: 3, KH: 5, KW: 5, Stride: 1, Pad: 2},
		{In: backend.Dims{N: 3, C: 17, H: 11, W: 13}, Out: 32, KH: 3, KW: 3, Stride: 2, Pad: 1},
	}
	first := make(chan struct{})
	done := make(chan struct{})
	// Goroutine A holds its OS thread until B has finished, so B's thread
	// differs. The channel work is deferred so that a t.Fatal inside (which
	// ends the goroutine) cannot leave the test waiting.
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer func() { <-done }()
		defer close(first)
		for _, c := range shapes {
			e.convCase(t, c)
		}
	}()
	<-first
	finished := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(finished)
		for _, c := range shapes {
			e.convCase(t, c)
		}
	}()
	<-finished
	close(done)
}

// convCase checks one convolution forward (with and without bias) and both
// backward passes.
func (e *env) convCase(t *testing.T, c backend.Conv2D) {
	name := fmt.Sprintf("in %v out %d k %d×%d s %d p %d", c.In, c.Out, c.KH, c.KW, c.Stride, c.Pad)
	o := c.OutDims()
	x, w, bias := e.rand(t, c.In.Size()), e.rand(t, c.WeightLen()), e.rand(t, c.Out)
	y, dy := e.rand(t, o.Size()), e.rand(t, o.Size())
	dx, dw, db := e.rand(t, c.In.Size()), e.rand(t, c.WeightLen()), e.rand(t, c.Out)
	e.run(t, name+" forward", func(b backend.Backend, s int) error { return b.Conv2DForward(c, x[s], w[s], bias[s], y[s]) }, y)
	e.run(t, name+" forward no bias", func(b backend.Backend, s int) error { return b.Conv2DForward(c, x[s], w[s], nil, y[s]) }, y)
	e.run(t, name+" backward data", func(b backend.Backend, s int) error { return b.Conv2DBackwardData(c, dy[s], w[s], dx[s]) }, dx)
	e.run(t, name+" backward weights", func(b backend.Backend, s int) error {
		return b.Conv2DBackwardWeights(c, x[s], dy[s], dw[s], db[s])
	}, dw, db)
	e.run(t, name+" backward weights no bias", func(b backend.Backend, s int) error {
		return b.Conv2DBackwardWeights(c, x[s], dy[s], dw[s], nil)
	}, dw)
}
