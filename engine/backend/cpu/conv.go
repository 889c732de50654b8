//go:build cgo

package cpu

import (
	"fmt"
	"unsafe"

	"github.com/hirez-ml/hirez/engine/backend"
)

var convOpName = [...]string{"conv2d forward", "conv2d backward data", "conv2d backward weights"}

func convString(c backend.Conv2D) string {
	return fmt.Sprintf("%v→%d k%d×%d s%d p%d", c.In, c.Out, c.KH, c.KW, c.Stride, c.Pad)
}

type convKey struct {
	c             backend.Conv2D
	bias          bool
	bf16, dstBF16 bool // bfloat16 src and weights; bfloat16 dst
}

// conv returns the cached primitive of the given kind for c.
func (b *Backend) conv(kind int, c backend.Conv2D, bias bool) (prim, error) {
	ck := convKey{c: c, bias: bias}
	if b.bf16 && kind == convFwd {
		ck.bf16, ck.dstBF16 = true, bf16Out(c)
	}
	k := primKey{op: opConv, kind: kind, conv: c, bias: bias, bf16: ck.bf16}
	if p, ok := b.prims[k]; ok {
		return p, nil
	}
	p, err := convCreate(b.ctx, kind, ck)
	if err != nil {
		return nil, err
	}
	b.prims[k] = p
	return p, nil
}

// bf16Out says whether a bfloat16 convolution keeps its output in bfloat16: the
// wide intermediates (a multiple of 16 channels, whole AVX-512 vectors) halve
// their traffic that way and the next conv rounds its input to bfloat16 anyway;
// narrow outputs such as 3-channel images are stored faster and exactly as fp32.
func bf16Out(c backend.Conv2D) bool { return c.Out%16 == 0 }

// cropped returns c with its input cut to the rows and columns the convolution
// reads, and whether that differs from c. At stride 2, PyTorch's floor division
// can leave trailing input unused; oneDNN would see that as negative right
// padding, which its backward-weights kernels do not survive.
func cropped(c backend.Conv2D) (backend.Conv2D, bool) {
	o := c.OutDims()
	cc := c
	cc.In.H = min(c.In.H, (o.H-1)*c.Stride+c.KH-c.Pad)
	cc.In.W = min(c.In.W, (o.W-1)*c.Stride+c.KW-c.Pad)
	return cc, cc.In != c.In
}

// crop returns the cached reorder between x of shape full in format fm and the
// contiguous NHWC window win in format wfm (dir 0 reads the window, dir 1 writes
// it back).
func (b *Backend) crop(full, win backend.Dims, fm, wfm, dir int) (prim, error) {
	k := primKey{op: opCrop, d: full, conv: backend.Conv2D{In: win}, from: fm, to: wfm, kind: dir}
	if p, ok := b.prims[k]; ok {
		return p, nil
	}
	p, err := cropCreate(b.ctx, full, win.H, win.W, fm, wfm, dir)
	if err != nil {
		return nil, err
	}
	b.prims[k] = p
	return p, nil
}

// convIn returns x (shape c.In) as the NHWC input of the primitive for cc (in
// bfloat16 when bf16): the window cc.In of it when the input is cropped.
func (b *Backend) convIn(x *buffer, c, cc backend.Conv2D, bf16 bool, slot int) (unsafe.Pointer, error) {
	want := layout{nhwc: true, d: c.In, bf16: bf16}
	if cc.In == c.In {
		return b.nhwcIn(x, want, slot)
	}
	if x.lay.nhwc && x.lay.d != c.In {
		if err := b.setLayout(x, plain); err != nil {
			return nil, err
		}
	}
	win := want
	win.d = cc.In
	p, err := b.crop(c.In, cc.In, x.lay.format(), win.format(), 0)
	if err != nil {
		return nil, err
	}
	s, err := b.scratchMem(slot, 4*cc.In.Size())
	if err != nil {
		return nil, err
	}
	return s, execPrim(b.ctx, "crop", p, x.p, s, nil, nil)
}

// nhwcIn returns x's values in the NHWC layout want: x itself when it is held
// that way, else a reorder into scratch slot i.
func (b *Backend) nhwcIn(x *buffer, want layout, i int) (unsafe.Pointer, error) {
	if x.lay == want {
		return x.p, nil
	}
	if x.lay.nhwc && x.lay.d != want.d {
		if err := b.setLayout(x, plain); err != nil {
			return nil, err
		}
	}
	s, err := b.scratchMem(i, 4*x.n)
	if err != nil {
		return nil, err
	}
	return s, b.reorderTo(x, want.d, want, s)
}

// weights returns w's values in the layout primitive p reads, from w's cache
// when w has not been written since it was packed for p.
func (b *Backend) weights(op string, w *buffer, p prim) (unsafe.Pointer, error) {
	if err := b.setLayout(w, plain); err != nil {
		return nil, err
	}
	bytes, reorder := primWeights(p)
	if !reorder {
		return w.p, nil
	}
	slot := -1
	for i := range w.pk {
		if w.pk[i].prim == p {
			if w.pk[i].gen == w.gen {
				return w.pk[i].mem.p, nil
			}
			slot = i
		}
	}
	if slot < 0 { // a free slot, else evict the first
		slot = 0
		for i := range w.pk {
			if w.pk[i].prim == nil {
				slot = i
				break
			}
		}
	}
	pk := &w.pk[slot]
	if pk.mem.bytes < bytes {
		if pk.mem.p != nil {
			cFree(pk.mem.p)
		}
		pk.mem = cmem{}
		m := cAlloc(bytes)
		if m == nil {
			return nil, fmt.Errorf("cpu: %s: packed weights of %d bytes: out of memory", op, bytes)
		}
		pk.mem = cmem{p: m, bytes: bytes}
	}
	pk.prim = nil
	if err := execWeightReorder(b.ctx, op, p, w.p, pk.mem.p); err != nil {
		return nil, err
	}
	pk.prim, pk.gen = p, w.gen
	return pk.mem.p, nil
}

// Conv2DForward implements backend.Backend.
func (b *Backend) Conv2DForward(c backend.Conv2D, x, w, bias, y backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	op := convOpName[convFwd]
	xb, wb, bb, yb, err := backend.ConvForwardArgs[*buffer](b, "cpu", c, x, w, bias, y)
	if err != nil {
		return err
	}
	od := c.OutDims()
	var bp unsafe.Pointer
	if bb != nil {
		if err := b.setLayout(bb, plain); err != nil {
			return err
		}
		bp = bb.p
	}
	cc, _ := cropped(c)
	p, err := b.conv(convFwd, cc, bb != nil)
	if err != nil {
		return err
	}
	src, err := b.convIn(xb, c, cc, b.bf16, 0)
	if err != nil {
		return err
	}
	wp, err := b.weights(op, wb, p)
	if err != nil {
		return err
	}
	if bb != nil {
		err = execPrim(b.ctx, op, p, src, wp, bp, yb.p)
	} else {
		err = execPrim(b.ctx, op, p, src, wp, yb.p, nil)
	}
	if err != nil {
		return err
	}
	yb.wrote(layout{nhwc: true, d: od, bf16: b.bf16 && bf16Out(c)})
	return nil
}

// Conv2DBackwardData implements backend.Backend.
func (b *Backend) Conv2DBackwardData(c backend.Conv2D, dy, w, dx backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	op := convOpName[convBwdData]
	if err := b.refuse(op); err != nil {
		return err
	}
	dyb, wb, dxb, err := backend.ConvBackwardDataArgs[*buffer](b, "cpu", c, dy, w, dx)
	if err != nil {
		return err
	}
	od := c.OutDims()
	cc, crop := cropped(c)
	p, err := b.conv(convBwdData, cc, false)
	if err != nil {
		return err
	}
	src, err := b.nhwcIn(dyb, nhwc(od), 0)
	if err != nil {
		return err
	}
	wp, err := b.weights(op, wb, p)
	if err != nil {
		return err
	}
	out := dxb.p
	if crop {
		if out, err = b.scratchMem(1, 4*cc.In.Size()); err != nil {
			return err
		}
	}
	if err := execPrim(b.ctx, op, p, src, wp, out, nil); err != nil {
		return err
	}
	if crop { // the unread input gets a zero gradient
		up, err := b.crop(c.In, cc.In, fmtNHWC, fmtNHWC, 1)
		if err != nil {
			return err
		}
		loopFill(b.nthr, dxb.p, dxb.n, 0)
		if err := execPrim(b.ctx, "conv2d backward data uncrop", up, out, dxb.p, nil, nil); err != nil {
			return err
		}
	}
	dxb.wrote(nhwc(c.In))
	return nil
}

// Conv2DBackwardWeights implements backend.Backend.
func (b *Backend) Conv2DBackwardWeights(c backend.Conv2D, x, dy, dw, db backend.Buffer) error {
	if err := b.lock(); err != nil {
		return err
	}
	defer b.mu.Unlock()
	op := convOpName[convBwdWeights]
	if err := b.refuse(op); err != nil {
		return err
	}
	xb, dyb, dwb, dbb, err := backend.ConvBackwardWeightsArgs[*buffer](b, "cpu", c, x, dy, dw, db)
	if err != nil {
		return err
	}
	od := c.OutDims()
	var dbp unsafe.Pointer
	if dbb != nil {
		dbp = dbb.p
	}
	cc, _ := cropped(c)
	p, err := b.conv(convBwdWeights, cc, dbb != nil)
	if err != nil {
		return err
	}
	src, err := b.convIn(xb, c, cc, false, 0)
	if err != nil {
		return err
	}
	ddst, err := b.nhwcIn(dyb, nhwc(od), 1)
	if err != nil {
		return err
	}
	bytes, reorder := primWeights(p)
	out := dwb.p
	if reorder {
		if out, err = b.scratchMem(2, bytes); err != nil {
			return err
		}
	}
	if err := execPrim(b.ctx, op, p, src, ddst, out, dbp); err != nil {
		return err
	}
	if reorder {
		if err := execWeightReorder(b.ctx, op, p, out, dwb.p); err != nil {
			return err
		}
	}
	dwb.wrote(plain)
	if dbb != nil {
		dbb.wrote(plain)
	}
	return nil
}
