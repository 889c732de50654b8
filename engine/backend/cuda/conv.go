//go:build cuda || cudaemu

package cuda

import (
	"fmt"

	"github.com/hirez-ml/hirez/engine/backend"
)

// copyAsync queues a device-to-device copy of src into dst (equal lengths).
func (b *Backend) copyAsync(op string, dst, src *buffer) error {
	if dst == src {
		return nil
	}
	if err := b.drv.copy(dst.p, src.p, 4*src.n); err != nil {
		return fmt.Errorf("cuda: %s: copy: %w", op, err)
	}
	return nil
}

// Grid limits of the GEMM: its tiles are 64×64, the column tiles on the grid's
// x axis (up to 2³¹ − 1 blocks), the row tiles on y (up to 65535).
const (
	gemmTile    = 64
	maxGridY    = 65535
	gemmThreads = 16
)

// gemm queues C = alpha·op(A)·op(B) + beta·C on device addresses (g checked).
func (b *Backend) gemm(op string, g backend.Gemm, a, bb, c ptr) error {
	rows := (g.M + gemmTile - 1) / gemmTile
	if rows > maxGridY {
		return fmt.Errorf("cuda: %s: %d rows: the GEMM kernel takes at most %d (%w)", op, g.M, maxGridY*gemmTile, backend.ErrNotImplemented)
	}
	return b.launch(op, "hz_sgemm", [2]int{(g.N + gemmTile - 1) / gemmTile, rows}, [2]int{gemmThreads, gemmThreads},
		dev(a), dev(bb), dev(c), i64(g.M), i64(g.N), i64(g.K), boolArg(g.TransA), boolArg(g.TransB), f32(g.Alpha), f32(g.Beta))
}

func boolArg(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

// MatMul implements backend.Backend with the tiled SGEMM kernel.
func (b *Backend) MatMul(g backend.Gemm, a, bm, c backend.Buffer) error {
	if err := g.Validate(); err != nil {
		return fmt.Errorf("cuda: %w", err)
	}
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	ab, err := b.get("matmul", "a", a, g.M*g.K)
	if err != nil {
		return err
	}
	bb, err := b.get("matmul", "b", bm, g.K*g.N)
	if err != nil {
		return err
	}
	cb, err := b.get("matmul", "c", c, g.M*g.N)
	if err != nil {
		return err
	}
	if err := noAlias("matmul", cb, "c", ab, "a"); err != nil {
		return err
	}
	if err := noAlias("matmul", cb, "c", bb, "b"); err != nil {
		return err
	}
	return b.gemm("matmul", g, ab.p, bb.p, cb.p)
}

// convGeom is one convolution's sizes for the kernels: per image, col is
// [ckk, ohw] (C·KH·KW rows, OH·OW columns).
type convGeom struct {
	c        backend.Conv2D
	o        backend.Dims
	ckk, ohw int
	inImg    int // C·H·W values of one input image
	outImg   int // Out·OH·OW values of one output image
	direct   bool
}

// geometry sizes c (already validated: backend.Conv*Args).
func geometry(op string, c backend.Conv2D) (convGeom, error) {
	o := c.OutDims()
	g := convGeom{c: c, o: o, ckk: c.In.C * c.KH * c.KW, ohw: o.H * o.W, inImg: c.In.C * c.In.H * c.In.W, outImg: o.C * o.H * o.W}
	// A 1×1 kernel at stride 1 without padding reads x as its own col.
	g.direct = c.KH == 1 && c.KW == 1 && c.Stride == 1 && c.Pad == 0
	if float64(g.ckk)*float64(g.ohw) > backend.MaxElements {
		return convGeom{}, fmt.Errorf("cuda: %s: im2col of %d×%d values exceeds %d (%w)", op, g.ckk, g.ohw, backend.MaxElements, backend.ErrNotImplemented)
	}
	return g, nil
}

func (g convGeom) args() []uint64 {
	c := g.c
	return []uint64{i64(c.In.C), i64(c.In.H), i64(c.In.W), i64(c.KH), i64(c.KW), i64(c.Stride), i64(c.Pad), i64(g.o.H), i64(g.o.W)}
}

// col returns image n's columns: x itself when direct, else im2col into the
// scratch memory (queued).
func (b *Backend) col(op string, g convGeom, x *buffer, n int, scratch ptr) (ptr, error) {
	if g.direct {
		return x.at(n * g.inImg), nil
	}
	args := append([]uint64{dev(x.at(n * g.inImg)), dev(scratch)}, g.args()...)
	if err := b.each(op, "hz_im2col", g.ckk*g.ohw, args...); err != nil {
		return 0, err
	}
	return scratch, nil
}

// Conv2DForward implements backend.Backend as im2col → GEMM per image, then
// the bias over the whole output:
// y[n] (Out × OH·OW) = w (Out × C·KH·KW) · col[n] (C·KH·KW × OH·OW).
func (b *Backend) Conv2DForward(c backend.Conv2D, x, w, bias, y backend.Buffer) error {
	const op = "conv2d forward"
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	xb, wb, bb, yb, err := backend.ConvForwardArgs[*buffer](b, "cuda", c, x, w, bias, y)
	if err != nil {
		return err
	}
	g, err := geometry(op, c)
	if err != nil {
		return err
	}
	var scratch ptr
	if !g.direct {
		if scratch, err = b.scratchFor(op, g.ckk*g.ohw); err != nil {
			return err
		}
	}
	mm := backend.Gemm{M: c.Out, N: g.ohw, K: g.ckk, Alpha: 1}
	for n := 0; n < c.In.N; n++ {
		col, err := b.col(op, g, xb, n, scratch)
		if err != nil {
			return err
		}
		if err := b.gemm(op, mm, wb.p, col, yb.at(n*g.outImg)); err != nil {
			return err
		}
	}
	if bb != nil {
		return b.addBias(g.o, yb, bb)
	}
	return nil
}

// Conv2DBackwardData implements backend.Backend per image:
// dcol = wᵀ (C·KH·KW × Out) · dy[n] (Out × OH·OW), then col2im into dx[n].
func (b *Backend) Conv2DBackwardData(c backend.Conv2D, dy, w, dx backend.Buffer) error {
	const op = "conv2d backward data"
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	dyb, wb, dxb, err := backend.ConvBackwardDataArgs[*buffer](b, "cuda", c, dy, w, dx)
	if err != nil {
		return err
	}
	g, err := geometry(op, c)
	if err != nil {
		return err
	}
	mm := backend.Gemm{TransA: true, M: g.ckk, N: g.ohw, K: c.Out, Alpha: 1}
	if g.direct { // dcol is dx[n] itself
		for n := 0; n < c.In.N; n++ {
			if err := b.gemm(op, mm, wb.p, dyb.at(n*g.outImg), dxb.at(n*g.inImg)); err != nil {
				return err
			}
		}
		return nil
	}
	scratch, err := b.scratchFor(op, g.ckk*g.ohw)
	if err != nil {
		return err
	}
	for n := 0; n < c.In.N; n++ {
		if err := b.gemm(op, mm, wb.p, dyb.at(n*g.outImg), scratch); err != nil {
			return err
		}
		args := append([]uint64{dev(scratch), dev(dxb.at(n * g.inImg))}, g.args()...)
		if err := b.each(op, "hz_col2im", g.inImg, args...); err != nil {
			return err
		}
	}
	return nil
}

// Conv2DBackwardWeights implements backend.Backend, accumulating over the
// batch in the GEMM (beta = 1 after the first image):
// dw (Out × C·KH·KW) += dy[n] (Out × OH·OW) · col[n]ᵀ; db from BiasGrad.
func (b *Backend) Conv2DBackwardWeights(c backend.Conv2D, x, dy, dw, db backend.Buffer) error {
	const op = "conv2d backward weights"
	if err := b.enter(); err != nil {
		return err
	}
	defer b.leave()
	xb, dyb, dwb, dbb, err := backend.ConvBackwardWeightsArgs[*buffer](b, "cuda", c, x, dy, dw, db)
	if err != nil {
		return err
	}
	g, err := geometry(op, c)
	if err != nil {
		return err
	}
	var scratch ptr
	if !g.direct {
		if scratch, err = b.scratchFor(op, g.ckk*g.ohw); err != nil {
			return err
		}
	}
	mm := backend.Gemm{TransB: true, M: c.Out, N: g.ckk, K: g.ohw, Alpha: 1}
	for n := 0; n < c.In.N; n++ {
		col, err := b.col(op, g, xb, n, scratch)
		if err != nil {
			return err
		}
		if n > 0 {
			mm.Beta = 1
		}
		if err := b.gemm(op, mm, dyb.p+ptr(4*n*g.outImg), col, dwb.p); err != nil {
			return err
		}
	}
	if dbb != nil {
		return b.biasGrad(g.o, dyb, dbb)
	}
	return nil
}
