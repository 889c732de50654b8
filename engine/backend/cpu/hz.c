//go:build cgo

#include "hz.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>
#include <dnnl_debug.h>

// Below this many values a loop runs on the calling thread: waking the OpenMP
// team costs more than it saves.
#define PAR_MIN 32768

// OpenMP starts its worker threads from whichever thread first runs a parallel
// region, and a thread inherits its creator's signal mask. Go's CPU profiler
// sends SIGPROF to every thread of the process, and a SIGPROF handled by Go on a
// thread C created corrupts the malloc heap (reproduced: `go test -cpuprofile` on
// a training step aborted in free() every time; with SIGPROF blocked in those
// threads it never did). So every entry point that may run a parallel region
// blocks SIGPROF for its duration: the workers it starts are born with SIGPROF
// blocked and keep it so, and the Go thread gets its mask back on return (a
// signal that arrived meanwhile is delivered then). Two cheap syscalls per call.
static void hz_restore_mask(sigset_t *old) { pthread_sigmask(SIG_SETMASK, old, NULL); }
static void hz_block_sigprof(sigset_t *old) {
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGPROF);
	pthread_sigmask(SIG_BLOCK, &s, old);
}
#define HZ_NO_SIGPROF \
	sigset_t hz_old_mask_ __attribute__((cleanup(hz_restore_mask))); \
	hz_block_sigprof(&hz_old_mask_)

#define CHECK(x) do { dnnl_status_t s_ = (x); if (s_ != dnnl_success) return s_; } while (0)

const char *hz_status(int s) { return dnnl_status2str((dnnl_status_t)s); }

void *hz_alloc(size_t bytes) {
	void *p = NULL;
	if (bytes == 0) bytes = 64;
	bytes = (bytes + 63) & ~(size_t)63;
	if (posix_memalign(&p, 64, bytes) != 0) return NULL;
	memset(p, 0, bytes);
	return p;
}

void hz_free(void *p) { free(p); }

int hz_init(hz_ctx **out, int nthr) {
	HZ_NO_SIGPROF;
	hz_ctx *c = calloc(1, sizeof *c);
	if (!c) return dnnl_out_of_memory;
	c->nthr = nthr;
	omp_set_num_threads(nthr);
	dnnl_status_t s = dnnl_engine_create(&c->eng, dnnl_cpu, 0);
	if (s == dnnl_success) s = dnnl_stream_create(&c->strm, c->eng, dnnl_stream_default_flags);
	if (s == dnnl_success) s = dnnl_primitive_attr_create(&c->attr);
	if (s == dnnl_success) s = dnnl_primitive_attr_set_scratchpad_mode(c->attr, dnnl_scratchpad_mode_user);
	if (s != dnnl_success) {
		if (c->attr) dnnl_primitive_attr_destroy(c->attr);
		if (c->strm) dnnl_stream_destroy(c->strm);
		if (c->eng) dnnl_engine_destroy(c->eng);
		free(c);
		return s;
	}
	*out = c;
	return dnnl_success;
}

void hz_destroy(hz_ctx *c) {
	if (!c) return;
	dnnl_primitive_attr_destroy(c->attr);
	dnnl_stream_destroy(c->strm);
	dnnl_engine_destroy(c->eng);
	free(c->scratch);
	free(c);
}

void hz_prim_destroy(hz_prim *p) {
	if (!p) return;
	for (int i = 0; i < p->nargs; i++) dnnl_memory_destroy(p->args[i].memory);
	if (p->p) dnnl_primitive_destroy(p->p);
	for (int i = 0; i < p->nwargs; i++) dnnl_memory_destroy(p->wargs[i].memory);
	if (p->wreo) dnnl_primitive_destroy(p->wreo);
	free(p);
}

// add_scratchpad appends pd's scratchpad argument to args (*nargs of them so far)
// when pd needs one, and grows the context's scratch buffer to fit it.
static dnnl_status_t add_scratchpad(hz_ctx *c, const_dnnl_primitive_desc_t pd, dnnl_exec_arg_t *args,
	int *nargs, int maxargs) {
	const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
	size_t bytes = md ? dnnl_memory_desc_get_size(md) : 0;
	if (bytes == 0) return dnnl_success;
	if (*nargs >= maxargs) return dnnl_runtime_error;
	if (bytes > c->scratch_bytes) {
		void *m = hz_alloc(bytes);
		if (!m) return dnnl_out_of_memory;
		free(c->scratch);
		c->scratch = m;
		c->scratch_bytes = bytes;
	}
	args[*nargs].arg = DNNL_ARG_SCRATCHPAD;
	CHECK(dnnl_memory_create(&args[*nargs].memory, md, c->eng, DNNL_MEMORY_NONE));
	(*nargs)++;
	return dnnl_success;
}

// set_handles points a primitive's arguments at the caller's buffers h (nuser of
// them) and the rest, the scratchpad, at the context's scratch buffer.
static dnnl_status_t set_handles(hz_ctx *c, dnnl_exec_arg_t *args, int nargs, int nuser, void **h) {
	for (int i = 0; i < nargs; i++)
		CHECK(dnnl_memory_set_data_handle_v2(args[i].memory, i < nuser ? h[i] : c->scratch, c->strm));
	return dnnl_success;
}

// finish turns a primitive descriptor into an hz_prim with one handle-less memory
// object per listed argument; it owns and destroys pd.
static dnnl_status_t finish(hz_ctx *c, dnnl_primitive_desc_t pd, int nargs, const int *argk,
	const dnnl_query_t *q, const int *qi, hz_prim **out) {
	hz_prim *p = calloc(1, sizeof *p);
	if (!p) { dnnl_primitive_desc_destroy(pd); return dnnl_out_of_memory; }
	dnnl_status_t s = dnnl_primitive_create(&p->p, pd);
	for (int i = 0; s == dnnl_success && i < nargs; i++) {
		const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, q[i], qi[i]);
		if (!md) { s = dnnl_runtime_error; break; }
		p->args[i].arg = argk[i];
		s = dnnl_memory_create(&p->args[i].memory, md, c->eng, DNNL_MEMORY_NONE);
		if (s == dnnl_success) p->nargs = i + 1;
	}
	p->nuser = p->nargs;
	if (s == dnnl_success) s = add_scratchpad(c, pd, p->args, &p->nargs, HZ_MAXARGS);
	dnnl_primitive_desc_destroy(pd);
	if (s != dnnl_success) { hz_prim_destroy(p); return s; }
	*out = p;
	return dnnl_success;
}

// make_reorder creates a reorder and its arguments (from, to, then the scratchpad
// when it needs one: args must hold 3); *nargs counts the memory objects made,
// which the caller destroys even on failure.
static dnnl_status_t make_reorder(hz_ctx *c, const dnnl_memory_desc_t *from,
	const dnnl_memory_desc_t *to, dnnl_primitive_t *prim, dnnl_exec_arg_t args[3], int *nargs) {
	dnnl_primitive_desc_t pd;
	*nargs = 0;
	CHECK(dnnl_reorder_primitive_desc_create(&pd, from, c->eng, to, c->eng, c->attr));
	dnnl_status_t s = dnnl_primitive_create(prim, pd);
	args[0].arg = DNNL_ARG_FROM;
	args[1].arg = DNNL_ARG_TO;
	if (s == dnnl_success) s = dnnl_memory_create(&args[0].memory, from, c->eng, DNNL_MEMORY_NONE);
	if (s == dnnl_success) {
		*nargs = 1;
		s = dnnl_memory_create(&args[1].memory, to, c->eng, DNNL_MEMORY_NONE);
	}
	if (s == dnnl_success) {
		*nargs = 2;
		s = add_scratchpad(c, pd, args, nargs, 3);
	}
	dnnl_primitive_desc_destroy(pd);
	return s;
}

static dnnl_format_tag_t tag_of(int fm) { return (fm & HZ_NHWC) ? dnnl_nhwc : dnnl_nchw; }
static dnnl_data_type_t dt_of(int fm) { return (fm & HZ_BF16) ? dnnl_bf16 : dnnl_f32; }

// The isa values are bit sets: avx512_core_bf16's bits are in AMX's too.
int hz_native_bf16(void) {
	int isa = (int)dnnl_get_effective_cpu_isa();
	return (isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16;
}

int hz_conv_create(hz_ctx *c, hz_prim **out, int kind, int n, int ic, int ih, int iw,
	int oc, int kh, int kw, int stride, int pad, int has_bias, int bf16, int dst_bf16) {
	HZ_NO_SIGPROF;
	if (bf16 && kind != HZ_CONV_FWD) return dnnl_unimplemented;
	omp_set_num_threads(c->nthr);
	int oh = (ih + 2 * pad - kh) / stride + 1, ow = (iw + 2 * pad - kw) / stride + 1;
	dnnl_dims_t sd = {n, ic, ih, iw}, dd = {n, oc, oh, ow}, wd = {oc, ic, kh, kw}, bd = {oc};
	dnnl_dims_t st = {stride, stride}, pl = {pad, pad};
	// PyTorch's floor division may leave input rows unused on the bottom/right;
	// oneDNN wants the right padding that makes the shapes consistent.
	dnnl_dims_t pr = {(oh - 1) * stride + kh - ih - pad, (ow - 1) * stride + kw - iw - pad};
	dnnl_memory_desc_t smd, dmd, wany, wplain, bmd;
	dnnl_data_type_t cdt = bf16 ? dnnl_bf16 : dnnl_f32;
	CHECK(dnnl_memory_desc_init_by_tag(&smd, 4, sd, cdt, dnnl_nhwc));
	CHECK(dnnl_memory_desc_init_by_tag(&dmd, 4, dd, dst_bf16 ? dnnl_bf16 : dnnl_f32, dnnl_nhwc));
	CHECK(dnnl_memory_desc_init_by_tag(&wany, 4, wd, cdt, dnnl_format_tag_any));
	CHECK(dnnl_memory_desc_init_by_tag(&wplain, 4, wd, dnnl_f32, dnnl_oihw));
	CHECK(dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_a));
	const dnnl_memory_desc_t *bp = has_bias ? &bmd : NULL;

	dnnl_convolution_desc_t fd;
	CHECK(dnnl_convolution_forward_desc_init(&fd,
		kind == HZ_CONV_FWD ? dnnl_forward_inference : dnnl_forward_training,
		dnnl_convolution_direct, &smd, &wany, bp, &dmd, st, pl, pr));
	dnnl_primitive_desc_t fpd;
	CHECK(dnnl_primitive_desc_create(&fpd, &fd, c->attr, c->eng, NULL));

	dnnl_primitive_desc_t pd = NULL;
	dnnl_status_t s = dnnl_success;
	int argk[4];
	dnnl_query_t q[4];
	int qi[4] = {0, 0, 0, 0};
	int nargs = 0;
	dnnl_query_t wq = dnnl_query_weights_md;
	if (kind == HZ_CONV_FWD) {
		pd = fpd;
		fpd = NULL;
		argk[0] = DNNL_ARG_SRC; q[0] = dnnl_query_src_md;
		argk[1] = DNNL_ARG_WEIGHTS; q[1] = dnnl_query_weights_md;
		argk[2] = DNNL_ARG_BIAS; q[2] = dnnl_query_weights_md; qi[2] = 1;
		argk[3] = DNNL_ARG_DST; q[3] = dnnl_query_dst_md;
		nargs = has_bias ? 4 : 4;
		if (!has_bias) { argk[2] = DNNL_ARG_DST; q[2] = dnnl_query_dst_md; nargs = 3; }
	} else if (kind == HZ_CONV_BWD_DATA) {
		dnnl_convolution_desc_t bd_;
		s = dnnl_convolution_backward_data_desc_init(&bd_, dnnl_convolution_direct, &smd, &wany,
			&dmd, st, pl, pr);
		if (s == dnnl_success) s = dnnl_primitive_desc_create(&pd, &bd_, c->attr, c->eng, fpd);
		argk[0] = DNNL_ARG_DIFF_DST; q[0] = dnnl_query_diff_dst_md;
		argk[1] = DNNL_ARG_WEIGHTS; q[1] = dnnl_query_weights_md;
		argk[2] = DNNL_ARG_DIFF_SRC; q[2] = dnnl_query_diff_src_md;
		nargs = 3;
	} else {
		dnnl_convolution_desc_t bd_;
		s = dnnl_convolution_backward_weights_desc_init(&bd_, dnnl_convolution_direct, &smd,
			&wany, bp, &dmd, st, pl, pr);
		if (s == dnnl_success) s = dnnl_primitive_desc_create(&pd, &bd_, c->attr, c->eng, fpd);
		argk[0] = DNNL_ARG_SRC; q[0] = dnnl_query_src_md;
		argk[1] = DNNL_ARG_DIFF_DST; q[1] = dnnl_query_diff_dst_md;
		argk[2] = DNNL_ARG_DIFF_WEIGHTS; q[2] = dnnl_query_diff_weights_md;
		argk[3] = DNNL_ARG_DIFF_BIAS; q[3] = dnnl_query_diff_weights_md; qi[3] = 1;
		nargs = has_bias ? 4 : 3;
		wq = dnnl_query_diff_weights_md;
	}
	if (fpd) dnnl_primitive_desc_destroy(fpd);
	CHECK(s);

	const dnnl_memory_desc_t *wq_md = dnnl_primitive_desc_query_md(pd, wq, 0);
	if (!wq_md) { dnnl_primitive_desc_destroy(pd); return dnnl_runtime_error; }
	dnnl_memory_desc_t wmd = *wq_md;
	hz_prim *p;
	CHECK(finish(c, pd, nargs, argk, q, qi, &p));
	p->wbytes = dnnl_memory_desc_get_size(&wmd);
	if (!dnnl_memory_desc_equal(&wmd, &wplain)) {
		s = kind == HZ_CONV_BWD_WEIGHTS ? make_reorder(c, &wmd, &wplain, &p->wreo, p->wargs, &p->nwargs)
						: make_reorder(c, &wplain, &wmd, &p->wreo, p->wargs, &p->nwargs);
		if (s != dnnl_success) { hz_prim_destroy(p); return s; }
	}
	*out = p;
	return dnnl_success;
}

int hz_reorder_create(hz_ctx *c, hz_prim **out, int n, int ch, int h, int w, int from, int to) {
	HZ_NO_SIGPROF;
	omp_set_num_threads(c->nthr);
	dnnl_dims_t d = {n, ch, h, w};
	dnnl_memory_desc_t a, b;
	CHECK(dnnl_memory_desc_init_by_tag(&a, 4, d, dt_of(from), tag_of(from)));
	CHECK(dnnl_memory_desc_init_by_tag(&b, 4, d, dt_of(to), tag_of(to)));
	hz_prim *p = calloc(1, sizeof *p);
	if (!p) return dnnl_out_of_memory;
	dnnl_status_t s = make_reorder(c, &a, &b, &p->p, p->args, &p->nargs);
	p->nuser = 2;
	if (s != dnnl_success) { hz_prim_destroy(p); return s; }
	*out = p;
	return dnnl_success;
}

int hz_crop_create(hz_ctx *c, hz_prim **out, int n, int ch, int h, int w, int hc, int wc, int fmt,
	int wfmt, int dir) {
	HZ_NO_SIGPROF;
	omp_set_num_threads(c->nthr);
	dnnl_dims_t d = {n, ch, hc, wc};
	dnnl_dims_t st;
	if (fmt & HZ_NHWC) {
		st[0] = (dnnl_dim_t)h * w * ch; st[1] = 1; st[2] = (dnnl_dim_t)w * ch; st[3] = ch;
	} else {
		st[0] = (dnnl_dim_t)ch * h * w; st[1] = (dnnl_dim_t)h * w; st[2] = w; st[3] = 1;
	}
	dnnl_memory_desc_t view, win;
	CHECK(dnnl_memory_desc_init_by_strides(&view, 4, d, dt_of(fmt), st));
	CHECK(dnnl_memory_desc_init_by_tag(&win, 4, d, dt_of(wfmt), tag_of(wfmt)));
	hz_prim *p = calloc(1, sizeof *p);
	if (!p) return dnnl_out_of_memory;
	dnnl_status_t s = dir == 0 ? make_reorder(c, &view, &win, &p->p, p->args, &p->nargs)
				   : make_reorder(c, &win, &view, &p->p, p->args, &p->nargs);
	p->nuser = 2;
	if (s != dnnl_success) { hz_prim_destroy(p); return s; }
	*out = p;
	return dnnl_success;
}

int hz_eltwise_create(hz_ctx *c, hz_prim **out, int bwd, int alg, float alpha, int64_t n, int bf16) {
	HZ_NO_SIGPROF;
	omp_set_num_threads(c->nthr);
	if (bf16 && bwd) return dnnl_unimplemented;
	dnnl_dims_t d = {n};
	dnnl_memory_desc_t md;
	CHECK(dnnl_memory_desc_init_by_tag(&md, 1, d, bf16 ? dnnl_bf16 : dnnl_f32, dnnl_a));
	float beta = alg == dnnl_eltwise_linear ? 0.f : 0.f;
	dnnl_eltwise_desc_t fd;
	CHECK(dnnl_eltwise_forward_desc_init(&fd, bwd ? dnnl_forward_training : dnnl_forward_inference,
		(dnnl_alg_kind_t)alg, &md, alpha, beta));
	dnnl_primitive_desc_t fpd, pd;
	CHECK(dnnl_primitive_desc_create(&fpd, &fd, c->attr, c->eng, NULL));
	if (!bwd) {
		int argk[2] = {DNNL_ARG_SRC, DNNL_ARG_DST};
		dnnl_query_t q[2] = {dnnl_query_src_md, dnnl_query_dst_md};
		int qi[2] = {0, 0};
		return finish(c, fpd, 2, argk, q, qi, out);
	}
	int usedst = alg == dnnl_eltwise_tanh_use_dst_for_bwd || alg == dnnl_eltwise_logistic_use_dst_for_bwd;
	dnnl_eltwise_desc_t bd;
	dnnl_status_t s = dnnl_eltwise_backward_desc_init(&bd, (dnnl_alg_kind_t)alg, &md, &md, alpha, beta);
	if (s == dnnl_success) s = dnnl_primitive_desc_create(&pd, &bd, c->attr, c->eng, fpd);
	dnnl_primitive_desc_destroy(fpd);
	CHECK(s);
	int argk[3] = {usedst ? DNNL_ARG_DST : DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC};
	dnnl_query_t q[3] = {dnnl_query_src_md, dnnl_query_diff_dst_md, dnnl_query_diff_src_md};
	int qi[3] = {0, 0, 0};
	return finish(c, pd, 3, argk, q, qi, out);
}

int hz_exec(hz_ctx *c, hz_prim *p, void *a0, void *a1, void *a2, void *a3) {
	HZ_NO_SIGPROF;
	void *h[4] = {a0, a1, a2, a3};
	if (p->nuser > 4) return dnnl_invalid_arguments;
	for (int i = 0; i < p->nuser; i++)
		if (!h[i]) return dnnl_invalid_arguments;
	omp_set_num_threads(c->nthr);
	CHECK(set_handles(c, p->args, p->nargs, p->nuser, h));
	CHECK(dnnl_primitive_execute(p->p, c->strm, p->nargs, p->args));
	return dnnl_stream_wait(c->strm);
}

int hz_exec_wreo(hz_ctx *c, hz_prim *p, void *from, void *to) {
	HZ_NO_SIGPROF;
	if (!p->wreo || !from || !to) return dnnl_invalid_arguments;
	void *h[2] = {from, to};
	omp_set_num_threads(c->nthr);
	CHECK(set_handles(c, p->wargs, p->nwargs, 2, h));
	CHECK(dnnl_primitive_execute(p->wreo, c->strm, p->nwargs, p->wargs));
	return dnnl_stream_wait(c->strm);
}

int hz_sgemm(hz_ctx *c, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
	const float *a, const float *b, float beta, float *cc) {
	HZ_NO_SIGPROF;
	omp_set_num_threads(c->nthr);
	return dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, ta ? m : k, b,
		tb ? k : n, beta, cc, n);
}

// ---- loops ----

void hz_fill(int nthr, float *x, int64_t n, float v) {
	HZ_NO_SIGPROF;
#pragma omp parallel for num_threads(nthr) if (n > PAR_MIN) schedule(static)
	for (int64_t i = 0; i < n; i++) x[i] = v;
}

void hz_axpby(int nthr, float a, const float *x, float b, float *y, int64_t n) {
	HZ_NO_SIGPROF;
	if (b == 0.f) {
#pragma omp parallel for num_threads(nthr) if (n > PAR_MIN) schedule(static)
		for (int64_t i = 0; i < n; i++) y[i] = a * x[i];
		return;
	}
#pragma omp parallel for num_threads(nthr) if (n > PAR_MIN) schedule(static)
	for (int64_t i = 0; i < n; i++) y[i] = a * x[i] + b * y[i];
}

void hz_mul(int nthr, const float *x, const float *y, float *o, int64_t n) {
	HZ_NO_SIGPROF;
#pragma omp parallel for num_threads(nthr) if (n > PAR_MIN) schedule(static)
	for (int64_t i = 0; i < n; i++) o[i] = x[i] * y[i];
}

void hz_clamp(int nthr, const float *x, float *y, int64_t n, float lo, float hi) {
	HZ_NO_SIGPROF;
#pragma omp parallel for num_threads(nthr) if (n > PAR_MIN) schedule(static)
	for (int64_t i = 0; i < n; i++) {
		float v = x[i];
		v = v < lo ? lo : v;
		y[i] = v > hi ? hi : v;
	}
}

float hz_sum(int nthr, const float *x, int64_t n) {
	HZ_NO_SIGPROF;
	double s = 0;
#pragma omp parallel for num_threads(nthr) if (n > PAR_MIN) reduction(+ : s) schedule(static)
	for (int64_t i = 0; i < n; i++) s += x[i];
	return (float)s;
}

void hz_add_bias(int nthr, int layout, int n, int ch, int64_t hw, float *x, const float *b) {
	HZ_NO_SIGPROF;
	if (layout == HZ_NHWC) {
		int64_t rows = (int64_t)n * hw;
#pragma omp parallel for num_threads(nthr) if (rows * ch > PAR_MIN) schedule(static)
		for (int64_t r = 0; r < rows; r++)
			for (int c = 0; c < ch; c++) x[r * ch + c] += b[c];
		return;
	}
#pragma omp parallel for num_threads(nthr) if ((int64_t)n * ch * hw > PAR_MIN) schedule(static)
	for (int64_t p = 0; p < (int64_t)n * ch; p++) {
		float v = b[p % ch], *xp = x + p * hw;
		for (int64_t i = 0; i < hw; i++) xp[i] += v;
	}
}

void hz_bias_grad(int nthr, int layout, int n, int ch, int64_t hw, const float *dy, float *db) {
	HZ_NO_SIGPROF;
	if (layout == HZ_NHWC) {
		int64_t rows = (int64_t)n * hw;
		for (int c = 0; c < ch; c++) db[c] = 0;
		// Per-thread partial sums over rows, then a serial reduction.
		int nt = rows * ch > PAR_MIN ? nthr : 1;
		double *part = calloc((size_t)nt * ch, sizeof(double));
		if (!part) { // out of memory: sum serially into db instead of crashing
			for (int64_t r = 0; r < rows; r++)
				for (int c = 0; c < ch; c++) db[c] += dy[r * ch + c];
			return;
		}
#pragma omp parallel num_threads(nt)
		{
			int t = omp_get_thread_num();
			double *pp = part + (size_t)t * ch;
#pragma omp for schedule(static)
			for (int64_t r = 0; r < rows; r++)
				for (int c = 0; c < ch; c++) pp[c] += dy[r * ch + c];
		}
		for (int t = 0; t < nt; t++)
			for (int c = 0; c < ch; c++) db[c] += (float)part[(size_t)t * ch + c];
		free(part);
		return;
	}
#pragma omp parallel for num_threads(nthr) if ((int64_t)n * ch * hw > PAR_MIN) schedule(static)
	for (int c = 0; c < ch; c++) {
		double s = 0;
		for (int i = 0; i < n; i++) {
			const float *p = dy + ((int64_t)i * ch + c) * hw;
			float ps = 0;
			for (int64_t j = 0; j < hw; j++) ps += p[j];
			s += ps;
		}
		db[c] = (float)s;
	}
}

void hz_upsample2x(int nthr, int layout, int esz, int n, int ch, int h, int w, const void *xv, void *yv) {
	HZ_NO_SIGPROF;
	int64_t tot = (int64_t)n * ch * h * w * 4;
	if (layout == HZ_NHWC) {
		const char *x = xv;
		char *y = yv;
		int64_t px = (int64_t)ch * esz; // bytes per pixel
#pragma omp parallel for num_threads(nthr) if (tot > PAR_MIN) schedule(static)
		for (int64_t r = 0; r < (int64_t)n * h; r++) {
			int64_t i = r / h, yy = r % h;
			for (int xx = 0; xx < w; xx++) {
				const char *s = x + ((i * h + yy) * w + xx) * px;
				char *d0 = y + ((i * 2 * h + 2 * yy) * 2 * w + 2 * xx) * px;
				char *d1 = d0 + (int64_t)2 * w * px;
				memcpy(d0, s, px); memcpy(d0 + px, s, px);
				memcpy(d1, s, px); memcpy(d1 + px, s, px);
			}
		}
		return;
	}
	const float *x = xv;
	float *y = yv;
#pragma omp parallel for num_threads(nthr) if (tot > PAR_MIN) schedule(static)
	for (int64_t r = 0; r < (int64_t)n * ch * h; r++) {
		const float *s = x + r * w;
		float *d0 = y + r * 4 * w, *d1 = d0 + 2 * w;
		for (int xx = 0; xx < w; xx++) {
			float v = s[xx];
			d0[2 * xx] = v; d0[2 * xx + 1] = v;
		}
		memcpy(d1, d0, (size_t)2 * w * 4);
	}
}

void hz_upsample2x_bwd(int nthr, int layout, int n, int ch, int h, int w, const float *dy, float *dx) {
	HZ_NO_SIGPROF;
	int64_t tot = (int64_t)n * ch * h * w * 4;
	if (layout == HZ_NHWC) {
#pragma omp parallel for num_threads(nthr) if (tot > PAR_MIN) schedule(static)
		for (int64_t r = 0; r < (int64_t)n * h; r++) {
			int64_t i = r / h, yy = r % h;
			for (int xx = 0; xx < w; xx++) {
				float *d = dx + ((i * h + yy) * w + xx) * ch;
				const float *s0 = dy + ((i * 2 * h + 2 * yy) * 2 * w + 2 * xx) * ch;
				const float *s1 = s0 + (int64_t)2 * w * ch;
				for (int c = 0; c < ch; c++) d[c] = (s0[c] + s0[ch + c]) + (s1[c] + s1[ch + c]);
			}
		}
		return;
	}
#pragma omp parallel for num_threads(nthr) if (tot > PAR_MIN) schedule(static)
	for (int64_t r = 0; r < (int64_t)n * ch * h; r++) {
		const float *s0 = dy + r * 4 * w, *s1 = s0 + 2 * w;
		float *d = dx + r * w;
		for (int xx = 0; xx < w; xx++)
			d[xx] = (s0[2 * xx] + s0[2 * xx + 1]) + (s1[2 * xx] + s1[2 * xx + 1]);
	}
}

// The maximum of a 2×2 block and its index 0..3 in row-major order, first on ties.
static inline int argmax4(float a, float b, float c, float d) {
	int k = 0;
	float m = a;
	if (b > m) { m = b; k = 1; }
	if (c > m) { m = c; k = 2; }
	if (d > m) { k = 3; }
	return k;
}

void hz_maxpool2(int nthr, int layout, int n, int ch, int h, int w, const float *x, float *y) {
	HZ_NO_SIGPROF;
	int oh = h / 2, ow = w / 2;
	int64_t tot = (int64_t)n * ch * h * w;
	if (layout == HZ_NHWC) {
#pragma omp parallel for num_threads(nthr) if (tot > PAR_MIN) schedule(static)
		for (int64_t r = 0; r < (int64_t)n * oh; r++) {
			int64_t i = r / oh, yy = r % oh;
			for (int xx = 0; xx < ow; xx++) {
				const float *s0 = x + ((i * h + 2 * yy) * w + 2 * xx) * ch, *s1 = s0 + (int64_t)w * ch;
				float *d = y + ((i * oh + yy) * ow + xx) * ch;
				for (int c = 0; c < ch; c++) {
					float m = s0[c];
					if (s0[ch + c] > m) m = s0[ch + c];
					if (s1[c] > m) m = s1[c];
					if (s1[ch + c] > m) m = s1[ch + c];
					d[c] = m;
				}
			}
		}
		return;
	}
#pragma omp parallel for num_threads(nthr) if (tot > PAR_MIN) schedule(static)
	for (int64_t r = 0; r < (int64_t)n * ch * oh; r++) {
		int64_t p = r / oh, yy = r % oh;
		const float *s0 = x + (p * h + 2 * yy) * w, *s1 = s0 + w;
		float *d = y + r * ow;
		for (int xx = 0; xx < ow; xx++) {
			float m = s0[2 * xx];
			if (s0[2 * xx + 1] > m) m = s0[2 * xx + 1];
			if (s1[2 * xx] > m) m = s1[2 * xx];
			if (s1[2 * xx + 1] > m) m = s1[2 * xx + 1];
			d[xx] = m;
		}
	}
}

void hz_maxpool2_bwd(int nthr, int layout, int n, int ch, int h, int w, const float *x,
	const float *dy, float *dx) {
	HZ_NO_SIGPROF;
	int oh = h / 2, ow = w / 2;
	int64_t tot = (int64_t)n * ch * h * w;
	if (layout == HZ_NHWC) {
#pragma omp parallel for num_threads(nthr) if (tot > PAR_MIN) schedule(static)
		for (int64_t r = 0; r < (int64_t)n * oh; r++) {
			int64_t i = r / oh, yy = r % oh;
			for (int xx = 0; xx < ow; xx++) {
				int64_t o0 = ((i * h + 2 * yy) * w + 2 * xx) * ch, o1 = o0 + (int64_t)w * ch;
				const float *g = dy + ((i * oh + yy) * ow + xx) * ch;
				for (int c = 0; c < ch; c++) {
					int k = argmax4(x[o0 + c], x[o0 + ch + c], x[o1 + c], x[o1 + ch + c]);
					dx[o0 + c] = k == 0 ? g[c] : 0.f;
					dx[o0 + ch + c] = k == 1 ? g[c] : 0.f;
					dx[o1 + c] = k == 2 ? g[c] : 0.f;
					dx[o1 + ch + c] = k == 3 ? g[c] : 0.f;
				}
			}
		}
		return;
	}
#pragma omp parallel for num_threads(nthr) if (tot > PAR_MIN) schedule(static)
	for (int64_t r = 0; r < (int64_t)n * ch * oh; r++) {
		int64_t p = r / oh, yy = r % oh;
		int64_t o0 = (p * h + 2 * yy) * w, o1 = o0 + w;
		const float *g = dy + r * ow;
		for (int xx = 0; xx < ow; xx++) {
			int64_t a = o0 + 2 * xx, b = o1 + 2 * xx;
			int k = argmax4(x[a], x[a + 1], x[b], x[b + 1]);
			dx[a] = k == 0 ? g[xx] : 0.f;
			dx[a + 1] = k == 1 ? g[xx] : 0.f;
			dx[b] = k == 2 ? g[xx] : 0.f;
			dx[b + 1] = k == 3 ? g[xx] : 0.f;
		}
	}
}

// hz_pixel_shuffle: forward maps x (n, c·r², h, w) to y (n, c, h·r, w·r); inverse maps
// x (n, c, h·r, w·r) back to y (n, c·r², h, w). Here c is the small channel count
// and h, w the small sides.
void hz_pixel_shuffle(int nthr, int inverse, int n, int c, int h, int w, int r, const float *x, float *y) {
	HZ_NO_SIGPROF;
	int64_t tot = (int64_t)n * c * r * r * h * w;
#pragma omp parallel for num_threads(nthr) if (tot > PAR_MIN) schedule(static)
	for (int64_t nc = 0; nc < (int64_t)n * c; nc++) {
		for (int i = 0; i < r; i++)
			for (int j = 0; j < r; j++) {
				int64_t small = ((nc * r + i) * r + j) * h * w; // channel (c·r² + i·r + j)
				for (int yy = 0; yy < h; yy++) {
					int64_t big = (nc * h * r + yy * r + i) * (int64_t)w * r + j;
					for (int xx = 0; xx < w; xx++) {
						if (inverse) y[small + yy * w + xx] = x[big + (int64_t)xx * r];
						else y[big + (int64_t)xx * r] = x[small + yy * w + xx];
					}
				}
			}
	}
}

void hz_bn_train(int nthr, int n, int ch, int64_t hw, float eps, float mom, const float *x,
	const float *g, const float *b, float *y, float *smean, float *sinv, float *rmean, float *rvar) {
	HZ_NO_SIGPROF;
	int64_t m = (int64_t)n * hw;
#pragma omp parallel for num_threads(nthr) if (m * ch > PAR_MIN) schedule(static)
	for (int c = 0; c < ch; c++) {
		double s = 0, ss = 0;
		for (int i = 0; i < n; i++) {
			const float *p = x + ((int64_t)i * ch + c) * hw;
			for (int64_t j = 0; j < hw; j++) s += p[j];
		}
		double mean = s / (double)m;
		for (int i = 0; i < n; i++) {
			const float *p = x + ((int64_t)i * ch + c) * hw;
			for (int64_t j = 0; j < hw; j++) { double d = p[j] - mean; ss += d * d; }
		}
		double var = ss / (double)m;
		float inv = (float)(1.0 / sqrt(var + eps));
		float sc = g[c] * inv, sh = b[c] - (float)mean * sc;
		for (int i = 0; i < n; i++) {
			const float *p = x + ((int64_t)i * ch + c) * hw;
			float *q = y + ((int64_t)i * ch + c) * hw;
			for (int64_t j = 0; j < hw; j++) q[j] = p[j] * sc + sh;
		}
		smean[c] = (float)mean;
		sinv[c] = inv;
		double unb = m > 1 ? var * (double)m / (double)(m - 1) : var;
		rmean[c] = (1 - mom) * rmean[c] + mom * (float)mean;
		rvar[c] = (1 - mom) * rvar[c] + mom * (float)unb;
	}
}

void hz_bn_infer(int nthr, int n, int ch, int64_t hw, float eps, const float *x, const float *g,
	const float *b, const float *rmean, const float *rvar, float *y) {
	HZ_NO_SIGPROF;
#pragma omp parallel for num_threads(nthr) if ((int64_t)n * ch * hw > PAR_MIN) schedule(static)
	for (int64_t p = 0; p < (int64_t)n * ch; p++) {
		int c = p % ch;
		float sc = g[c] / sqrtf(rvar[c] + eps), sh = b[c] - rmean[c] * sc;
		const float *xp = x + p * hw;
		float *yp = y + p * hw;
		for (int64_t j = 0; j < hw; j++) yp[j] = xp[j] * sc + sh;
	}
}

void hz_bn_bwd(int nthr, int n, int ch, int64_t hw, const float *x, const float *dy, const float *g,
	const float *smean, const float *sinv, float *dx, float *dg, float *db) {
	HZ_NO_SIGPROF;
	int64_t m = (int64_t)n * hw;
#pragma omp parallel for num_threads(nthr) if (m * ch > PAR_MIN) schedule(static)
	for (int c = 0; c < ch; c++) {
		double sdy = 0, sdyx = 0;
		float mu = smean[c], inv = sinv[c];
		for (int i = 0; i < n; i++) {
			int64_t o = ((int64_t)i * ch + c) * hw;
			for (int64_t j = 0; j < hw; j++) {
				sdy += dy[o + j];
				sdyx += dy[o + j] * ((x[o + j] - mu) * inv);
			}
		}
		dg[c] = (float)sdyx;
		db[c] = (float)sdy;
		float k = g[c] * inv / (float)m, a = (float)sdy, bb = (float)sdyx;
		for (int i = 0; i < n; i++) {
			int64_t o = ((int64_t)i * ch + c) * hw;
			for (int64_t j = 0; j < hw; j++) {
				float xh = (x[o + j] - mu) * inv;
				dx[o + j] = k * ((float)m * dy[o + j] - a - xh * bb);
			}
		}
	}
}

void hz_bce_logits(int nthr, const float *x, const float *t, int64_t n, float *loss, float *grad) {
	HZ_NO_SIGPROF;
	double s = 0;
	float inv = 1.f / (float)n;
#pragma omp parallel for num_threads(nthr) if (n > PAR_MIN) reduction(+ : s) schedule(static)
	for (int64_t i = 0; i < n; i++) {
		float v = x[i], tt = t[i], e = expf(-fabsf(v));
		s += (v > 0 ? v : 0) - v * tt + log1pf(e);
		float sig = v >= 0 ? 1.f / (1.f + e) : e / (1.f + e);
		grad[i] = (sig - tt) * inv;
	}
	*loss = (float)(s / (double)n);
}

void hz_mse(int nthr, const float *x, const float *t, int64_t n, float *loss, float *grad) {
	HZ_NO_SIGPROF;
	double s = 0;
	float k = 2.f / (float)n;
#pragma omp parallel for num_threads(nthr) if (n > PAR_MIN) reduction(+ : s) schedule(static)
	for (int64_t i = 0; i < n; i++) {
		float d = x[i] - t[i];
		s += (double)d * d;
		grad[i] = k * d;
	}
	*loss = (float)(s / (double)n);
}

void hz_hinge(int nthr, const float *x, float sign, int64_t n, float *loss, float *grad) {
	HZ_NO_SIGPROF;
	double s = 0;
	float k = -sign / (float)n;
#pragma omp parallel for num_threads(nthr) if (n > PAR_MIN) reduction(+ : s) schedule(static)
	for (int64_t i = 0; i < n; i++) {
		float m = 1.f - sign * x[i];
		s += m > 0 ? m : 0;
		grad[i] = m > 0 ? k : 0.f;
	}
	*loss = (float)(s / (double)n);
}

void hz_adam(int nthr, float lr, float b1, float b2, float eps, int step, float *p,
	const float *g, float *m, float *v, int64_t n) {
	HZ_NO_SIGPROF;
	// PyTorch's form: p -= lr/bc1 · m / (sqrt(v)/sqrt(bc2) + eps).
	float bc1 = 1.f - powf(b1, (float)step), bc2 = 1.f - powf(b2, (float)step);
	float sl = lr / bc1, rs = 1.f / sqrtf(bc2);
#pragma omp parallel for num_threads(nthr) if (n > PAR_MIN) schedule(static)
	for (int64_t i = 0; i < n; i++) {
		float gi = g[i];
		float mi = b1 * m[i] + (1.f - b1) * gi;
		float vi = b2 * v[i] + (1.f - b2) * gi * gi;
		m[i] = mi;
		v[i] = vi;
		p[i] -= sl * mi / (sqrtf(vi) * rs + eps);
	}
}
