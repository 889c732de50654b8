"""PyTorch on the GPU for scripts/gpu-check.sh: the workloads of engine/bench
(the nets of scripts/bench/torch_bench.py, imported, not copied) and the conv
and GEMM shapes of the Go benchmarks, on CUDA in fp32 with TF32 off (the Go
kernels are plain fp32), timed with a synchronize after each run (warm-up,
median of --reps). One JSON line each."""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
from torch_bench import Discriminator, Generator, srcnn  # noqa: E402


def timed(fn, reps):
    fn()
    torch.cuda.synchronize()
    runs = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        runs.append((time.perf_counter() - t) * 1e3)
    return statistics.median(runs), runs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    dev = torch.device("cuda")
    info = {"torch_version": torch.__version__, "device": torch.cuda.get_device_name(0),
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}

    def emit(name, fn, flops=0.0):
        ms, runs = timed(fn, a.reps)
        row = {"name": name, "ms": ms, "runs_ms": runs, **info}
        if flops:
            row["gflops"] = flops / ms / 1e6
        print(json.dumps(row), flush=True)

    with torch.no_grad():
        net = srcnn().eval().to(dev)
        for b in (1, 8):
            x = torch.rand(b, 3, 128, 128, device=dev)
            emit(f"srcnn_b{b}", lambda x=x: net(F.interpolate(x, scale_factor=2, mode="nearest")))
        g = Generator(128).eval().to(dev)
        z = torch.rand(16, 100, device=dev)
        emit("generator_h128_b16", lambda: g(z))
        # backendtest.BenchShapes, forward with bias: BenchmarkConv2D/cuda/<shape>.
        for (n, c, h, o, k, s, p) in ((1, 3, 64, 64, 9, 1, 4), (16, 128, 16, 64, 3, 1, 1), (16, 64, 32, 128, 3, 2, 1)):
            conv = nn.Conv2d(c, o, k, stride=s, padding=p).to(dev)
            x = torch.rand(n, c, h, h, device=dev)
            oh = (h + 2 * p - k) // s + 1
            emit(f"conv_n{n}c{c}h{h}w{h}_o{o}k{k}s{s}p{p}", lambda conv=conv, x=x: conv(x), 2.0 * n * o * oh * oh * c * k * k)
        for n in (512, 2048, 4096):
            x, y = torch.rand(n, n, device=dev), torch.rand(n, n, device=dev)
            emit(f"sgemm_n{n}", lambda x=x, y=y: x @ y, 2.0 * n ** 3)

    G, D = Generator(64).to(dev), Discriminator(64).to(dev)
    optG = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optD = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(16, 3, 64, 64, device=dev) * 2 - 1
    zt = torch.rand(16, 100, device=dev) * 2 - 1
    ones, zeros = torch.ones(16, 1, device=dev), torch.zeros(16, 1, device=dev)
    bce = nn.BCEWithLogitsLoss()

    def step():
        fake = G(zt)
        optD.zero_grad()
        (bce(D(real), ones) + bce(D(fake.detach()), zeros)).backward()
        optD.step()
        optG.zero_grad()
        bce(D(fake), ones).backward()
        optG.step()
    emit("train_step_h64_b16", step)


if __name__ == "__main__":
    main()
