"""Merges hzbench's, torch_bench.py's and ort_bench.js's JSON lines into the
`make bench` table, headed by what the numbers ran on: the CPU (model name and
its AVX2/AVX-512/AMX flags from /proc/cpuinfo), the ISA oneDNN chose (from its
ONEDNN_VERBOSE info lines), any ISA cap in the environment, and the peers'
versions.

    table.py GO.jsonl TORCH.jsonl [--ort ORT.jsonl] [--onednn VERBOSE.txt]
"""
import argparse
import json
import os


def load(path):
    if not path:
        return []
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def cpu():
    """Model name, logical CPUs, and the vector-ISA flags of /proc/cpuinfo."""
    model, n, flags = "?", 0, []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                k, v = k.strip(), v.strip()
                if k == "processor":
                    n += 1
                elif k == "model name" and model == "?":
                    model = v
                elif k == "flags" and not flags:
                    flags = v.split()
    except OSError:
        pass
    keep = [f for f in flags if f in ("avx", "avx2", "fma", "avx_vnni", "f16c")
            or f.startswith(("avx512", "amx"))]
    return model, n, keep


def onednn(path):
    """oneDNN's version, effective ISA and the convolution kernels of the probe
    (a tiny SRCNN), from the verbose lines of `ONEDNN_VERBOSE=1 hzbench -probe`."""
    ver = isa = ""
    conv = []
    if not path or not os.path.exists(path):
        return ver, isa, conv
    with open(path) as f:
        for line in f:
            p = line.strip().split(",")
            if len(p) < 3 or not p[0].endswith("_verbose"):
                continue
            if p[1] == "info" and p[2].startswith("oneDNN"):
                ver = p[2]
            elif p[1] == "info" and p[2] == "cpu" and len(p) > 3 and p[3].startswith("isa:"):
                isa = ",".join(p[3:])[4:]
            elif p[1] == "exec" and len(p) > 4 and p[3] == "convolution" and p[4] not in conv:
                conv.append(p[4])
    return ver, isa, ", ".join(conv)


def caps():
    names = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "OPENBLAS_CORETYPE")
    return ", ".join(f"{k}={os.environ[k]}" for k in names if os.environ.get(k))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("go")
    ap.add_argument("torch")
    ap.add_argument("--ort", default="")
    ap.add_argument("--onednn", default="")
    a = ap.parse_args()
    go, pt, ortl = load(a.go), load(a.torch), load(a.ort)

    model, ncpu, flags = cpu()
    ver, isa, conv = onednn(a.onednn)
    print(f"CPU: {model}, {ncpu} logical CPUs; ISA flags: {' '.join(flags) or 'none of avx2/avx512/amx'}")
    print(f"oneDNN: {ver or '?'}, effective ISA: {isa or '?'}" + (f"; SRCNN conv kernels: {conv}" if conv else ""))
    print(f"ISA caps and CPU settings in the environment: {caps() or 'none'}")
    tv = next((r.get("torch_version") for r in pt if r.get("torch_version")), "?")
    tc = next((r.get("aten_cpu_capability") for r in pt if r.get("aten_cpu_capability")), "?")
    line = f"PyTorch {tv} (ATen CPU capability {tc}; convolutions through the same libdnnl)"
    if ortl:
        line += (f"; ONNX Runtime {ortl[0].get('ort_version', '?')} (CPU EP, intra-op {ortl[0]['threads']},"
                 " inter-op 1, graph optimization all; MLAS picks its kernels from CPUID,"
                 " no oneDNN cap applies to it)")
    print(line)

    peaks = [r for r in go if r["name"] == "peak"]  # hzbench measures it at each start: take the best
    peak_r = max(peaks, key=lambda r: r["peak_gflops"])
    peak = peak_r["peak_gflops"]
    rss = [r for r in go if r["name"] == "srcnn_rss"]
    torch = {(r["name"], r["channels_last"], r.get("dtype", "fp32")): r["ms"] for r in pt}
    ort = {r["name"]: r["ms"] for r in ortl}
    seen = "" if len(peaks) < 2 else f" (best of {len(peaks)}; lowest {min(r['peak_gflops'] for r in peaks):.0f})"
    print(f"fp32 peak ({peak_r.get('peak_isa', 'avx512')} FMA loop, {peak_r['threads']} threads): {peak:.0f} GFLOP/s{seen}")
    hdr = (f"{'workload':<20}{'backend':<10}{'Go ms':>9}{'ORT':>9}{'PT cl':>9}{'PT nchw':>9}{'PT bf16':>9}"
           f"{'Go/ORT':>8}{'Go/PT cl':>9}{'Go/PT nchw':>11}{'Go/PT bf16':>11}{'GFLOP/s':>9}{'% peak':>7}"
           f"{'allocs/op':>10}")
    print(hdr)
    print("-" * len(hdr))
    fp32 = {}
    goals = []
    for r in go:
        if "gflop" not in r or not r.get("ms"):
            continue
        n, be, ms = r["name"], r.get("backend", "cpu"), r["ms"]
        if be == "cpu":
            fp32[n] = ms
        o = ort.get(n)
        cl, nc, bf = torch.get((n, True, "fp32")), torch.get((n, False, "fp32")), torch.get((n, True, "bf16"))
        gf = r["gflop"] / (ms / 1e3)
        f = lambda v: f"{v:.1f}" if v else "-"
        q = lambda v: f"{ms / v:.2f}" if v else "-"
        print(f"{n:<20}{be:<10}{ms:>9.1f}{f(o):>9}{f(cl):>9}{f(nc):>9}{f(bf):>9}{q(o):>8}{q(cl):>9}{q(nc):>11}"
              f"{q(bf):>11}{gf:>9.1f}{100 * gf / peak:>6.0f}%{r.get('allocs_per_op', 0):>10.0f}")
        if o and be == "cpu":
            goals.append((f"{n} fp32 Go/ORT", ms / o, 1.0))
        elif o and be == "cpu-bf16":
            goals.append((f"{n} bf16 Go/ORT fp32", ms / o, 0.55))
        if r.get("name", "").startswith("train") and (cl or nc):
            best = min(v for v in (cl, nc) if v)
            goals.append((f"{n} Go/PT (faster layout)", ms / best, 0.5))
    print("(ORT: ONNX Runtime fp32, the same nets exported from PyTorch; PT cl / nchw: PyTorch fp32")
    print(" channels_last / default layout; PT bf16: bfloat16 autocast, channels_last; % peak is of the")
    print(" fp32 FMA peak for every row, bf16 included; the train step has no ORT row.)")
    ratios = [f"{r['name']} {r['ms'] / fp32[r['name']]:.2f}" for r in go
              if r.get("backend") == "cpu-bf16" and r.get("ms") and r["name"] in fp32]
    if ratios:
        print("time ratio cpu-bf16 / cpu: " + ", ".join(ratios))
    for r in rss:
        print(f"peak RSS, one 128²→256² SRCNN inference on {r.get('backend', 'cpu')} (Go, whole process): {r['rss_mb']:.0f} MB")
    if goals:
        print("goals (issue #12): " + "; ".join(
            f"{g} {v:.2f} {'≤' if v <= lim else '>'} {lim:g} {'met' if v <= lim else 'NOT met'}" for g, v, lim in goals))


if __name__ == "__main__":
    main()
