"""PyTorch side of `make bench`: the workloads of engine/bench (study SRCNN, DCGAN
generator, one DCGAN training step), timed the same way (warm-up, median of
--reps), printed as one JSON line each. The inference workloads run again under
CPU bfloat16 autocast (channels_last; the output converted back to float32, as
the Go side downloads float32). Run with Debian's /usr/bin/python3.

With --onnx DIR it times nothing: it writes the inference nets, built as below
(same seed, same shapes), to DIR as ONNX (torch.onnx.export, opset 13, static
shapes) for scripts/bench/ort_bench.js: srcnn_b1.onnx, srcnn_b8.onnx (the
nearest 2x upsampling inside the graph), generator_h128_b16.onnx."""
import contextlib
import argparse
import json
import statistics
import sys
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


class Upscaler(nn.Module):
    """Nearest 2x, then the SRCNN: what srcnn_b* times, as one graph."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(F.interpolate(x, scale_factor=2, mode="nearest"))


def export_onnx(out):
    """The fp32 inference nets of main() (the first, channels_last pass: same
    seed, same construction order) as ONNX files in out."""
    import os
    import warnings
    warnings.filterwarnings("ignore", category=UserWarning)  # the exporter's shape-inference notes
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    net = srcnn().eval()
    nets = []
    for b in (1, 8):
        nets.append((f"srcnn_b{b}", Upscaler(net).eval(), torch.rand(b, 3, 128, 128)))
    g = Generator(128).eval()
    nets.append(("generator_h128_b16", g, torch.rand(16, 100)))
    for name, m, x in nets:
        path = os.path.join(out, name + ".onnx")
        with torch.no_grad():
            torch.onnx.export(m, (x,), path, opset_version=13, input_names=["x"], output_names=["y"],
                              do_constant_folding=True)
        print(json.dumps({"name": name, "onnx": path, "input_shape": list(x.shape),
                          "torch_version": torch.__version__}), flush=True)


def cpu_capability():
    """ATen's vector ISA (ATEN_CPU_CAPABILITY picks it; oneDNN's is separate)."""
    for line in torch.__config__.show().splitlines():
        if "CPU capability usage:" in line:
            return line.split(":", 1)[1].strip()
    return ""


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
    ap.add_argument("--onnx", default="", help="export the inference nets as ONNX into this folder and exit")
    ap.add_argument("--no-bf16", action="store_true", help="leave out the bf16 autocast pass")
    a = ap.parse_args()
    if a.onnx:
        export_onnx(a.onnx)
        return
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cap = cpu_capability()

    skip_bf16 = [a.no_bf16]

    def emit(name, fn, cl, dtype="fp32"):
        if a.only and a.only != name or dtype == "bf16" and skip_bf16[0]:
            return
        try:
            ms, runs = timed(fn, a.reps)
        except RuntimeError as e:
            if dtype != "bf16":
                raise
            # oneDNN has no bf16 convolution below AVX-512 (e.g. under DNNL_MAX_CPU_ISA=AVX2).
            print(f"torch_bench: bf16 autocast unavailable here, no PT bf16 rows: {e}", file=sys.stderr)
            skip_bf16[0] = True
            return
        print(json.dumps({"name": name, "ms": ms, "runs_ms": runs, "channels_last": cl, "dtype": dtype,
                          "threads": torch.get_num_threads(), "torch_version": torch.__version__,
                          "aten_cpu_capability": cap}), flush=True)

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
