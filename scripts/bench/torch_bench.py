"""PyTorch side of `make bench`: the workloads of engine/bench (study SRCNN, DCGAN
generator, one DCGAN training step), timed the same way (warm-up, median of
--reps), printed as one JSON line each. The inference workloads run again under
CPU bfloat16 autocast (channels_last; the output converted back to float32, as
the Go side downloads float32). Run with Debian's /usr/bin/python3."""
import contextlib
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def srcnn():
    return nn.Sequential(
        nn.Conv2d(3, 256, 9, padding=4), nn.ReLU(),
        nn.Conv2d(256, 128, 3, padding=1), nn.ReLU(),
        nn.Conv2d(128, 3, 5, padding=2))


class Generator(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.s = h // 8
        self.fc = nn.Linear(100, 256 * self.s * self.s)
        self.c1 = nn.Conv2d(256, 128, 3, padding=1)
        self.c2 = nn.Conv2d(128, 64, 3, padding=1)
        self.c3 = nn.Conv2d(64, 3, 3, padding=1)
        self.cl = False

    def forward(self, z):
        x = F.relu(self.fc(z)).view(-1, 256, self.s, self.s)
        if self.cl:
            x = x.contiguous(memory_format=torch.channels_last)
        x = F.relu(self.c1(F.interpolate(x, scale_factor=2, mode="nearest")))
        x = F.relu(self.c2(F.interpolate(x, scale_factor=2, mode="nearest")))
        return torch.tanh(self.c3(F.interpolate(x, scale_factor=2, mode="nearest")))


class Discriminator(nn.Module):
    def __init__(self, h):
        super().__init__()
        self.c1 = nn.Conv2d(3, 64, 3, padding=1)
        self.c2 = nn.Conv2d(64, 128, 3, padding=1)
        self.c3 = nn.Conv2d(128, 256, 3, padding=1)
        self.fc1 = nn.Linear(256 * (h // 8) ** 2, 512)
        self.fc2 = nn.Linear(512, 1)

    def forward(self, x):
        for c in (self.c1, self.c2, self.c3):
            x = F.max_pool2d(F.leaky_relu(c(x), 0.2), 2)
        x = F.leaky_relu(self.fc1(x.flatten(1)), 0.2)
        return self.fc2(x)


def timed(fn, reps):
    fn()
    runs = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t) * 1e3)
    return statistics.median(runs), runs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)

    def emit(name, fn, cl, dtype="fp32"):
        if a.only and a.only != name:
            return
        ms, runs = timed(fn, a.reps)
        print(json.dumps({"name": name, "ms": ms, "runs_ms": runs, "channels_last": cl, "dtype": dtype,
                          "threads": torch.get_num_threads()}), flush=True)

    def precision(bf16):
        if bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    for cl, bf16 in ((True, False), (False, False), (True, True)):
        fmt = torch.channels_last if cl else torch.contiguous_format
        dtype = "bf16" if bf16 else "fp32"
        net = srcnn().eval().to(memory_format=fmt)
        for b in (1, 8):
            x = torch.rand(b, 3, 128, 128)

            def run(x=x, net=net, bf16=bf16):
                with torch.no_grad(), precision(bf16):
                    u = F.interpolate(x, scale_factor=2, mode="nearest").contiguous(memory_format=fmt)
                    return net(u).float()
            emit(f"srcnn_b{b}", run, cl, dtype)

        g = Generator(128).eval().to(memory_format=fmt)
        g.cl = cl
        z = torch.rand(16, 100)

        def gen(g=g, z=z, bf16=bf16):
            with torch.no_grad(), precision(bf16):
                return g(z).float()
        emit("generator_h128_b16", gen, cl, dtype)
        if bf16:
            continue  # training stays fp32

        G, D = Generator(64), Discriminator(64)
        G.cl = cl
        G, D = G.to(memory_format=fmt), D.to(memory_format=fmt)
        optG = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        optD = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        real = (torch.rand(16, 3, 64, 64) * 2 - 1).contiguous(memory_format=fmt)
        zt = torch.rand(16, 100) * 2 - 1
        ones, zeros = torch.ones(16, 1), torch.zeros(16, 1)
        bce = nn.BCEWithLogitsLoss()

        def step():
            fake = G(zt)
            optD.zero_grad()
            (bce(D(real), ones) + bce(D(fake.detach()), zeros)).backward()
            optD.step()
            optG.zero_grad()
            bce(D(fake), ones).backward()
            optG.step()
        emit("train_step_h64_b16", step, cl)


if __name__ == "__main__":
    main()
