"""Merges hzbench's and torch_bench.py's JSON lines into the `make bench` table."""
import json
import sys


def load(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def main():
    go, pt = load(sys.argv[1]), load(sys.argv[2])
    peak = next((r["peak_gflops"] for r in go if r["name"] == "peak"), None)
    rss = next((r["rss_mb"] for r in go if r["name"] == "srcnn_rss"), None)
    torch = {(r["name"], r["channels_last"]): r["ms"] for r in pt}
    print(f"fp32 peak (FMA loop, {go[0]['threads']} threads): {peak:.0f} GFLOP/s")
    hdr = f"{'workload':<22}{'Go ms':>10}{'PT cl ms':>10}{'PT nchw ms':>11}{'Go/PT cl':>9}{'Go/PT nchw':>11}{'Go GFLOP/s':>11}{'% peak':>8}"
    print(hdr)
    print("-" * len(hdr))
    for r in go:
        if "gflop" not in r or not r.get("ms"):
            continue
        n, ms = r["name"], r["ms"]
        cl, nc = torch.get((n, True)), torch.get((n, False))
        gf = r["gflop"] / (ms / 1e3)
        f = lambda v: f"{v:.1f}" if v else "-"
        q = lambda v: f"{ms / v:.2f}" if v else "-"
        print(f"{n:<22}{ms:>10.1f}{f(cl):>10}{f(nc):>11}{q(cl):>9}{q(nc):>11}{gf:>11.1f}{100 * gf / peak:>7.0f}%")
    if rss is not None:
        print(f"peak RSS, one 128²→256² SRCNN inference (Go, whole process): {rss:.0f} MB")


if __name__ == "__main__":
    main()
