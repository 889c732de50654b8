//go:build cgo

package cpu

// This file is the whole cgo surface of the package: every call into C (hz.c, the
// thin layer over oneDNN plus the OpenMP loops) goes through the wrappers below, so
// the rest of the package deals in unsafe.Pointer to C memory and Go ints.
//
// Pointer rules: buffers are C memory (posix_memalign, 64-byte aligned), so Go only
// ever holds C pointers. Go memory reaches C only as the destination of Download,
// for the duration of one call.

/*
#cgo CFLAGS: -O3 -fopenmp
#cgo LDFLAGS: -ldnnl -fopenmp -lm
#include "hz.h"
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/hirez-ml/hirez/engine/backend"
)

// oneDNN algorithm kinds used by the eltwise primitive.
const (
	algReLU           = int(C.dnnl_eltwise_relu)
	algTanh           = int(C.dnnl_eltwise_tanh)
	algLogistic       = int(C.dnnl_eltwise_logistic)
	algTanhUseDst     = int(C.dnnl_eltwise_tanh_use_dst_for_bwd)
	algLogisticUseDst = int(C.dnnl_eltwise_logistic_use_dst_for_bwd)
)

const (
	convFwd        = int(C.HZ_CONV_FWD)
	convBwdData    = int(C.HZ_CONV_BWD_DATA)
	convBwdWeights = int(C.HZ_CONV_BWD_WEIGHTS)
	fmtPlain       = int(C.HZ_PLAIN)
	fmtNHWC        = int(C.HZ_NHWC)
	fmtBF16        = int(C.HZ_BF16) // or'ed into fmtPlain/fmtNHWC
)

// nativeBF16 reports whether oneDNN runs bfloat16 in hardware on this CPU.
func nativeBF16() bool { return C.hz_native_bf16() != 0 }

// dnnlError names the operation and oneDNN's status.
type dnnlError struct {
	op     string
	status int
}

func (e *dnnlError) Error() string {
	return fmt.Sprintf("cpu: %s: oneDNN status %s (%d)", e.op, C.GoString(C.hz_status(C.int(e.status))), e.status)
}

func check(op string, s C.int) error {
	if s == 0 {
		return nil
	}
	return &dnnlError{op: op, status: int(s)}
}

// ctxPtr is the oneDNN engine and stream (C.hz_ctx).
type ctxPtr = *C.hz_ctx

// prim is a created oneDNN primitive with its memory objects (C.hz_prim).
type prim = *C.hz_prim

func ctxCreate(nthr int) (ctxPtr, error) {
	var c *C.hz_ctx
	if err := check("engine create", C.hz_init(&c, C.int(nthr))); err != nil {
		return nil, err
	}
	return c, nil
}

func ctxDestroy(c *C.hz_ctx) { C.hz_destroy(c) }

func primDestroy(p prim) { C.hz_prim_destroy(p) }

// primWeightBytes is the size of the weights in the primitive's layout and
// whether that layout differs from plain oihw (a reorder is needed).
func primWeights(p prim) (bytes int, reorder bool) {
	return int(p.wbytes), p.wreo != nil
}

func cAlloc(bytes int) unsafe.Pointer { return C.hz_alloc(C.size_t(bytes)) }

func cFree(p unsafe.Pointer) { C.hz_free(p) }

func convCreate(c *C.hz_ctx, kind int, k convKey) (prim, error) {
	var p prim
	cv := k.c
	bias := 0
	if k.bias {
		bias = 1
	}
	s := C.hz_conv_create(c, &p, C.int(kind), C.int(cv.In.N), C.int(cv.In.C), C.int(cv.In.H),
		C.int(cv.In.W), C.int(cv.Out), C.int(cv.KH), C.int(cv.KW), C.int(cv.Stride), C.int(cv.Pad), C.int(bias),
		cbool(k.bf16), cbool(k.dstBF16))
	return p, check(convOpName[kind]+" "+convString(cv)+": create", s)
}

func reorderCreate(c *C.hz_ctx, n, ch, h, w, from, to int) (prim, error) {
	var p prim
	s := C.hz_reorder_create(c, &p, C.int(n), C.int(ch), C.int(h), C.int(w), C.int(from), C.int(to))
	return p, check("reorder create", s)
}

func cropCreate(c ctxPtr, full backend.Dims, hc, wc, fm, wfm, dir int) (prim, error) {
	var p prim
	s := C.hz_crop_create(c, &p, C.int(full.N), C.int(full.C), C.int(full.H), C.int(full.W), C.int(hc), C.int(wc), C.int(fm), C.int(wfm), C.int(dir))
	return p, check("crop create", s)
}

func cbool(v bool) C.int {
	if v {
		return 1
	}
	return 0
}

func eltwiseCreate(c *C.hz_ctx, bwd bool, alg int, alpha float32, n int, bf16 bool) (prim, error) {
	var p prim
	s := C.hz_eltwise_create(c, &p, cbool(bwd), C.int(alg), C.float(alpha), C.int64_t(n), cbool(bf16))
	return p, check("eltwise create", s)
}

func execPrim(c *C.hz_ctx, op string, p prim, a0, a1, a2, a3 unsafe.Pointer) error {
	if s := C.hz_exec(c, p, a0, a1, a2, a3); s != 0 {
		return &dnnlError{op: op, status: int(s)}
	}
	return nil
}

func execWeightReorder(c *C.hz_ctx, op string, p prim, from, to unsafe.Pointer) error {
	if s := C.hz_exec_wreo(c, p, from, to); s != 0 {
		return &dnnlError{op: op + ": weight reorder", status: int(s)}
	}
	return nil
}

func sgemm(c *C.hz_ctx, ta, tb bool, m, n, k int, alpha float32, a, b unsafe.Pointer, beta float32, cc unsafe.Pointer) error {
	var ia, ib C.int
	if ta {
		ia = 1
	}
	if tb {
		ib = 1
	}
	s := C.hz_sgemm(c, ia, ib, C.int64_t(m), C.int64_t(n), C.int64_t(k), C.float(alpha),
		(*C.float)(a), (*C.float)(b), C.float(beta), (*C.float)(cc))
	if s != 0 {
		return &dnnlError{op: "matmul (sgemm)", status: int(s)}
	}
	return nil
}

func f(p unsafe.Pointer) *C.float { return (*C.float)(p) }

func loopFill(t int, x unsafe.Pointer, n int, v float32) {
	C.hz_fill(C.int(t), f(x), C.int64_t(n), C.float(v))
}

func loopAxpby(t int, a float32, x unsafe.Pointer, b float32, y unsafe.Pointer, n int) {
	C.hz_axpby(C.int(t), C.float(a), f(x), C.float(b), f(y), C.int64_t(n))
}

func loopMul(t int, x, y, o unsafe.Pointer, n int) {
	C.hz_mul(C.int(t), f(x), f(y), f(o), C.int64_t(n))
}

func loopClamp(t int, x, y unsafe.Pointer, n int, lo, hi float32) {
	C.hz_clamp(C.int(t), f(x), f(y), C.int64_t(n), C.float(lo), C.float(hi))
}

func loopSum(t int, x unsafe.Pointer, n int) float32 {
	return float32(C.hz_sum(C.int(t), f(x), C.int64_t(n)))
}

func loopAddBias(t, layout, n, ch, hw int, x, b unsafe.Pointer) {
	C.hz_add_bias(C.int(t), C.int(layout), C.int(n), C.int(ch), C.int64_t(hw), f(x), f(b))
}

func loopBiasGrad(t, layout, n, ch, hw int, dy, db unsafe.Pointer) {
	C.hz_bias_grad(C.int(t), C.int(layout), C.int(n), C.int(ch), C.int64_t(hw), f(dy), f(db))
}

// loopUpsample runs the forward (esz bytes per value; bfloat16 only in NHWC) or
// the backward (float32) of nearest 2× upsampling.
func loopUpsample(t, layout, esz, n, ch, h, w int, x, y unsafe.Pointer, bwd bool) {
	if bwd {
		C.hz_upsample2x_bwd(C.int(t), C.int(layout), C.int(n), C.int(ch), C.int(h), C.int(w), f(x), f(y))
		return
	}
	C.hz_upsample2x(C.int(t), C.int(layout), C.int(esz), C.int(n), C.int(ch), C.int(h), C.int(w), x, y)
}

func loopMaxPool(t, layout, n, ch, h, w int, x, y unsafe.Pointer) {
	C.hz_maxpool2(C.int(t), C.int(layout), C.int(n), C.int(ch), C.int(h), C.int(w), f(x), f(y))
}

func loopMaxPoolBwd(t, layout, n, ch, h, w int, x, dy, dx unsafe.Pointer) {
	C.hz_maxpool2_bwd(C.int(t), C.int(layout), C.int(n), C.int(ch), C.int(h), C.int(w), f(x), f(dy), f(dx))
}

func loopPixelShuffle(t int, inverse bool, n, c, h, w, r int, x, y unsafe.Pointer) {
	inv := 0
	if inverse {
		inv = 1
	}
	C.hz_pixel_shuffle(C.int(t), C.int(inv), C.int(n), C.int(c), C.int(h), C.int(w), C.int(r), f(x), f(y))
}

func loopBNTrain(t, n, ch, hw int, eps, mom float32, x, g, b, y, sm, si, rm, rv unsafe.Pointer) {
	C.hz_bn_train(C.int(t), C.int(n), C.int(ch), C.int64_t(hw), C.float(eps), C.float(mom),
		f(x), f(g), f(b), f(y), f(sm), f(si), f(rm), f(rv))
}

func loopBNInfer(t, n, ch, hw int, eps float32, x, g, b, rm, rv, y unsafe.Pointer) {
	C.hz_bn_infer(C.int(t), C.int(n), C.int(ch), C.int64_t(hw), C.float(eps), f(x), f(g), f(b), f(rm), f(rv), f(y))
}

func loopBNBwd(t, n, ch, hw int, x, dy, g, sm, si, dx, dg, db unsafe.Pointer) {
	C.hz_bn_bwd(C.int(t), C.int(n), C.int(ch), C.int64_t(hw), f(x), f(dy), f(g), f(sm), f(si), f(dx), f(dg), f(db))
}

func loopBCE(t int, x, tg unsafe.Pointer, n int, loss, grad unsafe.Pointer) {
	C.hz_bce_logits(C.int(t), f(x), f(tg), C.int64_t(n), f(loss), f(grad))
}

func loopMSE(t int, x, tg unsafe.Pointer, n int, loss, grad unsafe.Pointer) {
	C.hz_mse(C.int(t), f(x), f(tg), C.int64_t(n), f(loss), f(grad))
}

func loopHinge(t int, x unsafe.Pointer, sign float32, n int, loss, grad unsafe.Pointer) {
	C.hz_hinge(C.int(t), f(x), C.float(sign), C.int64_t(n), f(loss), f(grad))
}

func loopAdam(t int, lr, b1, b2, eps float32, step int, p, g, m, v unsafe.Pointer, n int) {
	C.hz_adam(C.int(t), C.float(lr), C.float(b1), C.float(b2), C.float(eps), C.int(step), f(p), f(g), f(m), f(v), C.int64_t(n))
}
