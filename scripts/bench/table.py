"""Merges hzbench's and torch_bench.py's JSON lines into the `make bench` table."""
import json
import sys


def load(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def main():
    go, pt = load(sys.argv[1]), load(sys.argv[2])
    peak = next((r["peak_gflops"] for r in go if r["name"] == "peak"), None)
    rss = [r for r in go if r["name"] == "srcnn_rss"]
    torch = {(r["name"], r["channels_last"], r.get("dtype", "fp32")): r["ms"] for r in pt}
    print(f"fp32 peak (FMA loop, {go[0]['threads']} threads): {peak:.0f} GFLOP/s")
    hdr = (f"{'workload':<20}{'backend':<10}{'Go ms':>9}{'PT cl':>9}{'PT nchw':>9}{'PT bf16':>9}"
           f"{'Go/PT cl':>9}{'Go/PT nchw':>11}{'Go/PT bf16':>11}{'GFLOP/s':>9}{'% peak':>7}{'allocs/op':>10}")
    print(hdr)
    print("-" * len(hdr))
    fp32 = {}
    for r in go:
        if "gflop" not in r or not r.get("ms"):
            continue
        n, be, ms = r["name"], r.get("backend", "cpu"), r["ms"]
        if be == "cpu":
            fp32[n] = ms
        cl, nc, bf = torch.get((n, True, "fp32")), torch.get((n, False, "fp32")), torch.get((n, True, "bf16"))
        gf = r["gflop"] / (ms / 1e3)
        f = lambda v: f"{v:.1f}" if v else "-"
        q = lambda v: f"{ms / v:.2f}" if v else "-"
        print(f"{n:<20}{be:<10}{ms:>9.1f}{f(cl):>9}{f(nc):>9}{f(bf):>9}{q(cl):>9}{q(nc):>11}{q(bf):>11}"
              f"{gf:>9.1f}{100 * gf / peak:>6.0f}%{r.get('allocs_per_op', 0):>10.0f}")
    print("(PT cl / nchw: PyTorch fp32 channels_last / default layout; PT bf16: bfloat16 autocast, channels_last;")
    print(" % peak is of the fp32 FMA peak for every row, bf16 included.)")
    ratios = [f"{r['name']} {r['ms'] / fp32[r['name']]:.2f}" for r in go
              if r.get("backend") == "cpu-bf16" and r.get("ms") and r["name"] in fp32]
    if ratios:
        print("time ratio cpu-bf16 / cpu: " + ", ".join(ratios))
    for r in rss:
        print(f"peak RSS, one 128²→256² SRCNN inference on {r.get('backend', 'cpu')} (Go, whole process): {r['rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
