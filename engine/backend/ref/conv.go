package ref

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/hirez-ml/hirez/engine/backend"
)

// gemm computes c = alpha·op(a)·op(b) + beta·c for row-major matrices, op(a)
// m×k and op(b) k×n, with float64 dot products. beta = 0 writes c without
// reading it.
//
// Every element's sum runs over p = 0…k−1 in order, whichever loop shape walks
// the memory: the dot form when b is stored n×k (both operands contiguous in
// p), else row updates (b's rows contiguous in j). Rows of c are independent and
// split over the CPUs, so the result does not depend on the split either.
func gemm(transA, transB bool, m, n, k int, alpha float32, a, b []float32, beta float32, c []float32) {
	g := gemmArgs{transA, transB, m, n, k, alpha, a, b, beta, c}
	if workers := min(runtime.GOMAXPROCS(0), m); workers >= 2 && int64(m)*int64(n)*int64(k) >= parallelMinWork {
		g.parallel(workers)
		return
	}
	g.rows(0, m)
}

// parallel splits the rows over workers goroutines (a method of a copy, so
// that the serial path's arguments stay on the stack).
func (g gemmArgs) parallel(workers int) {
	m := g.m
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.rows(w*m/workers, (w+1)*m/workers)
		}()
	}
	wg.Wait()
}

// gemmArgs is one gemm call, so that its row loop is a method rather than a
// closure (closures passed on escape to the heap, and inference must not
// allocate).
type gemmArgs struct {
	transA, transB bool
	m, n, k        int
	alpha          float32
	a, b           []float32
	beta           float32
	c              []float32
}

// at is op(a)[i, p].
func (g *gemmArgs) at(i, p int) float32 {
	if g.transA {
		return g.a[p*g.m+i] // a is stored k×m
	}
	return g.a[i*g.k+p]
}

// accBlock is how many outputs of a row rows sums at a time, in a stack
// array: no allocation (sync.Pool would allocate under -race, which drops
// pooled items on purpose), and a block of b's row stays in cache across p.
const accBlock = 256

// rows computes rows [i0, i1) of c.
func (g *gemmArgs) rows(i0, i1 int) {
	n, k := g.n, g.k
	var acc [accBlock]float64
	for i := i0; i < i1; i++ {
		for j0 := 0; j0 < n; j0 += accBlock {
			blk := acc[:min(accBlock, n-j0)]
			if g.transB { // b is stored n×k
				for jj := range blk {
					var s float64
					for p, bv := range g.b[(j0+jj)*k:][:k] {
						s += float64(g.at(i, p)) * float64(bv)
					}
					blk[jj] = s
				}
			} else {
				clear(blk)
				for p := 0; p < k; p++ {
					av := float64(g.at(i, p))
					for jj, bv := range g.b[p*n+j0:][:len(blk)] {
						blk[jj] += av * float64(bv)
					}
				}
			}
			for jj, s := range blk {
				v := g.alpha * float32(s)
				if g.beta != 0 {
					v += g.beta * g.c[i*n+j0+jj]
				}
				g.c[i*n+j0+jj] = v
			}
		}
	}
}

// parallelMinWork is the multiply-adds below which gemm stays on the calling
// goroutine: starting goroutines costs more than it saves there, and it
// allocates.
const parallelMinWork = 1 << 22

// MatMul implements backend.Backend.
func (r *Backend) MatMul(g backend.Gemm, a, b, c backend.Buffer) error {
	if err := g.Validate(); err != nil {
		return fmt.Errorf("ref: %w", err)
	}
	as, err := r.get("matmul", "a", a, g.M*g.K)
	if err != nil {
		return err
	}
	bs, err := r.get("matmul", "b", b, g.K*g.N)
	if err != nil {
		return err
	}
	cs, err := r.get("matmul", "c", c, g.M*g.N)
	if err != nil {
		return err
	}
	if err := noAlias("matmul", cs, "c", as, "a"); err != nil {
		return err
	}
	if err := noAlias("matmul", cs, "c", bs, "b"); err != nil {
		return err
	}
	gemm(g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, as, bs, g.Beta, cs)
	return nil
}

// AddBias implements backend.Backend.
func (r *Backend) AddBias(d backend.Dims, x, bias backend.Buffer) error {
	if err := rule(backend.CheckDims("add bias", d)); err != nil {
		return err
	}
	xs, err := r.get("add bias", "x", x, d.Size())
	if err != nil {
		return err
	}
	bs, err := r.get("add bias", "bias", bias, d.C)
	if err != nil {
		return err
	}
	addBias(d, xs, bs)
	return nil
}

func addBias(d backend.Dims, x, bias []float32) {
	hw := d.H * d.W
	for n := 0; n < d.N; n++ {
		for c := 0; c < d.C; c++ {
			plane := x[(n*d.C+c)*hw : (n*d.C+c+1)*hw]
			for i := range plane {
				plane[i] += bias[c]
			}
		}
	}
}

// BiasGrad implements backend.Backend.
func (r *Backend) BiasGrad(d backend.Dims, dy, db backend.Buffer) error {
	if err := rule(backend.CheckDims("bias grad", d)); err != nil {
		return err
	}
	dys, err := r.get("bias grad", "dy", dy, d.Size())
	if err != nil {
		return err
	}
	dbs, err := r.get("bias grad", "db", db, d.C)
	if err != nil {
		return err
	}
	if err := noAlias("bias grad", dbs, "db", dys, "dy"); err != nil {
		return err
	}
	biasGrad(d, dys, dbs)
	return nil
}

func biasGrad(d backend.Dims, dy, db []float32) {
	hw := d.H * d.W
	for c := 0; c < d.C; c++ {
		var s float64
		for n := 0; n < d.N; n++ {
			for _, v := range dy[(n*d.C+c)*hw : (n*d.C+c+1)*hw] {
				s += float64(v)
			}
		}
		db[c] = float32(s)
	}
}

// im2col unrolls one image x [C, H, W] into cols [C·KH·KW, OH·OW]: row
// (ci, ki, kj) holds, for every output pixel, the input value its kernel tap
// (ki, kj) reads on channel ci, or 0 in the padding.
func im2col(c backend.Conv2D, x, cols []float32) {
	in, o := c.In, c.OutDims()
	row := 0
	for ci := 0; ci < in.C; ci++ {
		for ki := 0; ki < c.KH; ki++ {
			for kj := 0; kj < c.KW; kj++ {
				dst := cols[row*o.H*o.W : (row+1)*o.H*o.W]
				for oh := 0; oh < o.H; oh++ {
					ih := oh*c.Stride - c.Pad + ki
					for ow := 0; ow < o.W; ow++ {
						iw := ow*c.Stride - c.Pad + kj
						v := float32(0)
						if ih >= 0 && ih < in.H && iw >= 0 && iw < in.W {
							v = x[(ci*in.H+ih)*in.W+iw]
						}
						dst[oh*o.W+ow] = v
					}
				}
				row++
			}
		}
	}
}

// col2im is im2col's adjoint: it adds every column entry back onto the input
// pixel it came from. dx [C, H, W] must be zeroed by the caller.
func col2im(c backend.Conv2D, cols, dx []float32) {
	in, o := c.In, c.OutDims()
	row := 0
	for ci := 0; ci < in.C; ci++ {
		for ki := 0; ki < c.KH; ki++ {
			for kj := 0; kj < c.KW; kj++ {
				src := cols[row*o.H*o.W : (row+1)*o.H*o.W]
				for oh := 0; oh < o.H; oh++ {
					ih := oh*c.Stride - c.Pad + ki
					for ow := 0; ow < o.W; ow++ {
						iw := ow*c.Stride - c.Pad + kj
						if ih >= 0 && ih < in.H && iw >= 0 && iw < in.W {
							dx[(ci*in.H+ih)*in.W+iw] += src[oh*o.W+ow]
						}
					}
				}
				row++
			}
		}
	}
}

// takeScratch returns a slice of n values from the pool (contents undefined).
func (r *Backend) takeScratch(n int) []float32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, s := range r.scratch {
		if cap(s) >= n {
			last := len(r.scratch) - 1
			r.scratch[i] = r.scratch[last]
			r.scratch[last] = nil
			r.scratch = r.scratch[:last]
			return s[:n]
		}
	}
	return make([]float32, n)
}

func (r *Backend) putScratch(s []float32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.scratch) < 8 {
		r.scratch = append(r.scratch, s)
	}
}

// data returns the values of resolved buffers (nil for a nil one).
func data(bufs ...*buffer) [4][]float32 {
	var out [4][]float32
	for i, b := range bufs {
		if b != nil {
			out[i] = b.data
		}
	}
	return out
}

// live reports a closed backend (Resolve has checked the buffers).
func (r *Backend) live(op string, err error) error {
	if err == nil && r.closed.Load() {
		return fmt.Errorf("ref: %s: backend is closed", op)
	}
	return err
}

// Conv2DForward implements backend.Backend as im2col → gemm → bias, one image
// at a time: y[n] (Out × OH·OW) = W (Out × C·KH·KW) · cols (C·KH·KW × OH·OW).
func (r *Backend) Conv2DForward(c backend.Conv2D, x, w, bias, y backend.Buffer) error {
	xb, wb, bb, yb, err := backend.ConvForwardArgs[*buffer](r, "ref", c, x, w, bias, y)
	if err := r.live("conv2d forward", err); err != nil {
		return err
	}
	v := data(xb, wb, bb, yb)
	xs, ws, bs, ys := v[0], v[1], v[2], v[3]
	in, o := c.In, c.OutDims()
	k := in.C * c.KH * c.KW
	cols := r.takeScratch(k * o.H * o.W)
	defer r.putScratch(cols)
	for n := 0; n < in.N; n++ {
		im2col(c, xs[n*in.C*in.H*in.W:(n+1)*in.C*in.H*in.W], cols)
		gemm(false, false, c.Out, o.H*o.W, k, 1, ws, cols, 0, ys[n*o.C*o.H*o.W:(n+1)*o.C*o.H*o.W])
	}
	if bs != nil {
		addBias(o, ys, bs)
	}
	return nil
}

// Conv2DBackwardData implements backend.Backend: per image, dcols = Wᵀ·dy[n],
// then col2im scatters dcols onto dx.
func (r *Backend) Conv2DBackwardData(c backend.Conv2D, dy, w, dx backend.Buffer) error {
	dyb, wb, dxb, err := backend.ConvBackwardDataArgs[*buffer](r, "ref", c, dy, w, dx)
	if err := r.live("conv2d backward data", err); err != nil {
		return err
	}
	dys, ws, dxs := dyb.data, wb.data, dxb.data
	in, o := c.In, c.OutDims()
	k := in.C * c.KH * c.KW
	cols := r.takeScratch(k * o.H * o.W)
	defer r.putScratch(cols)
	for i := range dxs {
		dxs[i] = 0
	}
	for n := 0; n < in.N; n++ {
		gemm(true, false, k, o.H*o.W, c.Out, 1, ws, dys[n*o.C*o.H*o.W:(n+1)*o.C*o.H*o.W], 0, cols)
		col2im(c, cols, dxs[n*in.C*in.H*in.W:(n+1)*in.C*in.H*in.W])
	}
	return nil
}

// Conv2DBackwardWeights implements backend.Backend: dW = Σₙ dy[n]·cols[n]ᵀ,
// db = Σ dy over n, h, w.
func (r *Backend) Conv2DBackwardWeights(c backend.Conv2D, x, dy, dw, db backend.Buffer) error {
	xb, dyb, dwb, dbb, err := backend.ConvBackwardWeightsArgs[*buffer](r, "ref", c, x, dy, dw, db)
	if err := r.live("conv2d backward weights", err); err != nil {
		return err
	}
	v := data(xb, dyb, dwb, dbb)
	xs, dys, dws, dbs := v[0], v[1], v[2], v[3]
	in, o := c.In, c.OutDims()
	k := in.C * c.KH * c.KW
	cols := r.takeScratch(k * o.H * o.W)
	defer r.putScratch(cols)
	for n := 0; n < in.N; n++ {
		im2col(c, xs[n*in.C*in.H*in.W:(n+1)*in.C*in.H*in.W], cols)
		beta := float32(1)
		if n == 0 {
			beta = 0
		}
		gemm(false, true, c.Out, k, o.H*o.W, 1, dys[n*o.C*o.H*o.W:(n+1)*o.C*o.H*o.W], cols, beta, dws)
	}
	if dbs != nil {
		biasGrad(o, dys, dbs)
	}
	return nil
}
