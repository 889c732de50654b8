//go:build cgo

// hz.h is the C side of the cpu backend: a thin layer over oneDNN 2.6's C API plus
// the memory-bound loops (OpenMP) that are not worth a oneDNN primitive. Every
// function returns a dnnl_status_t (dnnl_success == 0) unless it cannot fail.
#ifndef HIREZ_CPU_HZ_H
#define HIREZ_CPU_HZ_H

#include <stddef.h>
#include <stdint.h>
#include <dnnl.h>

typedef struct hz_ctx {
	dnnl_engine_t eng;
	dnnl_stream_t strm;
	int nthr;
	// Every primitive is created with a user-managed scratchpad and runs with this
	// one buffer, grown to the largest primitive's need. oneDNN's default (library)
	// scratchpad is a thread-local of the thread that created the primitive, and Go
	// runs each cgo call on whichever OS thread is free: a primitive executed on
	// another thread got that thread's scratchpad, NULL or too small (the SIGSEGVs on
	// AVX2/SSE4.1, whose kernels need a scratchpad where the AVX-512 ones did not).
	// Executions are serialised by the caller, so one buffer serves them all.
	dnnl_primitive_attr_t attr;
	void *scratch;
	size_t scratch_bytes;
} hz_ctx;

enum { HZ_MAXARGS = 6 };

// hz_prim is a created primitive with one memory object per argument; the data
// handles are set just before each execution (callers serialise executions). The
// first nuser arguments are the caller's (hz_exec's a0…a3 in order); one more, the
// scratchpad, follows when the primitive needs one.
typedef struct hz_prim {
	dnnl_primitive_t p;
	int nargs, nuser;
	dnnl_exec_arg_t args[HZ_MAXARGS];
	// Weights: the layout the primitive wants and the reorder from (fwd, bwd data)
	// or to (bwd weights) plain oihw; wreo is NULL when the primitive takes oihw.
	dnnl_primitive_t wreo;
	int nwargs;
	dnnl_exec_arg_t wargs[3];
	size_t wbytes;
} hz_prim;

enum { HZ_CONV_FWD = 0, HZ_CONV_BWD_DATA = 1, HZ_CONV_BWD_WEIGHTS = 2 };
// Formats: HZ_PLAIN (nchw, or a flat vector) or HZ_NHWC, or'ed with HZ_BF16 for
// bfloat16 values (else float32).
enum { HZ_PLAIN = 0, HZ_NHWC = 1, HZ_BF16 = 2 };

int hz_init(hz_ctx **out, int nthr);
void hz_destroy(hz_ctx *c);
void hz_prim_destroy(hz_prim *p);
const char *hz_status(int s);

void *hz_alloc(size_t bytes);
void hz_free(void *p);

// Convolutions, src/dst in nhwc. With bf16 (forward only), src and weights are
// bfloat16 and dst is bfloat16 when dst_bf16, else float32; bias stays float32
// and accumulation is float32. Argument order of hz_exec:
//   fwd:          src, weights, bias (may be NULL when has_bias = 0), dst
//   bwd data:     diff_dst, weights, diff_src
//   bwd weights:  src, diff_dst, diff_weights, diff_bias (when has_bias)
int hz_conv_create(hz_ctx *c, hz_prim **out, int kind, int n, int ic, int ih, int iw,
	int oc, int kh, int kw, int stride, int pad, int has_bias, int bf16, int dst_bf16);
// Reorder between two 4-D formats (HZ_PLAIN/HZ_NHWC | HZ_BF16); args: from, to.
int hz_reorder_create(hz_ctx *c, hz_prim **out, int n, int ch, int h, int w, int from, int to);
// Crop between a (n, ch, h, w) tensor in format fmt and a contiguous (n, ch, hc,
// wc) top-left window of it in format wfmt (nhwc): dir 0 reads the window out
// (args: full, window), dir 1 writes it back (args: window, full).
int hz_crop_create(hz_ctx *c, hz_prim **out, int n, int ch, int h, int w, int hc, int wc, int fmt,
	int wfmt, int dir);
// Elementwise on n values (bfloat16 when bf16, forward only); fwd args: src, dst;
// bwd args: src-or-dst, diff_dst, diff_src.
int hz_eltwise_create(hz_ctx *c, hz_prim **out, int bwd, int alg, float alpha, int64_t n, int bf16);
// Whether oneDNN runs bfloat16 natively here (avx512_bf16 or AMX), not emulated.
int hz_native_bf16(void);

int hz_exec(hz_ctx *c, hz_prim *p, void *a0, void *a1, void *a2, void *a3);
// Weight reorder of a conv primitive: from plain to the primitive's layout
// (fwd, bwd data) or back (bwd weights).
int hz_exec_wreo(hz_ctx *c, hz_prim *p, void *from, void *to);

int hz_sgemm(hz_ctx *c, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
	const float *a, const float *b, float beta, float *cc);

// Loops.
void hz_fill(int nthr, float *x, int64_t n, float v);
void hz_axpby(int nthr, float a, const float *x, float b, float *y, int64_t n);
void hz_mul(int nthr, const float *x, const float *y, float *o, int64_t n);
void hz_clamp(int nthr, const float *x, float *y, int64_t n, float lo, float hi);
float hz_sum(int nthr, const float *x, int64_t n);
void hz_add_bias(int nthr, int layout, int n, int ch, int64_t hw, float *x, const float *b);
void hz_bias_grad(int nthr, int layout, int n, int ch, int64_t hw, const float *dy, float *db);
// Upsampling in nhwc copies whole pixels, so it serves bfloat16 too (esz: bytes per value).
void hz_upsample2x(int nthr, int layout, int esz, int n, int ch, int h, int w, const void *x, void *y);
void hz_upsample2x_bwd(int nthr, int layout, int n, int ch, int h, int w, const float *dy, float *dx);
void hz_maxpool2(int nthr, int layout, int n, int ch, int h, int w, const float *x, float *y);
void hz_maxpool2_bwd(int nthr, int layout, int n, int ch, int h, int w, const float *x,
	const float *dy, float *dx);
void hz_pixel_shuffle(int nthr, int inverse, int n, int c, int h, int w, int r, const float *x, float *y);
void hz_bn_train(int nthr, int n, int ch, int64_t hw, float eps, float mom, const float *x,
	const float *g, const float *b, float *y, float *smean, float *sinv, float *rmean, float *rvar);
void hz_bn_infer(int nthr, int n, int ch, int64_t hw, float eps, const float *x, const float *g,
	const float *b, const float *rmean, const float *rvar, float *y);
void hz_bn_bwd(int nthr, int n, int ch, int64_t hw, const float *x, const float *dy, const float *g,
	const float *smean, const float *sinv, float *dx, float *dg, float *db);
void hz_bce_logits(int nthr, const float *x, const float *t, int64_t n, float *loss, float *grad);
void hz_mse(int nthr, const float *x, const float *t, int64_t n, float *loss, float *grad);
void hz_hinge(int nthr, const float *x, float sign, int64_t n, float *loss, float *grad);
void hz_adam(int nthr, float lr, float b1, float b2, float eps, int step, float *p,
	const float *g, float *m, float *v, int64_t n);

#endif
