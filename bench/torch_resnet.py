#!/usr/bin/python3
"""PyTorch reference for `longtail bench`: the same CIFAR ResNet (option-A shortcuts, the
model of tests/fixtures/fx_resnet.py), batch, input size and thread count, random data.

Training: SGD steps (zero_grad, forward, mean cross-entropy, backward, step with lr 0.1,
momentum 0.9, weight decay 5e-4), model.train(). Inference: model.eval() under
torch.no_grad(). Prints the same lines as `longtail bench`: median over the timed steps.

Run with Debian's python3-torch:  /usr/bin/python3 bench/torch_resnet.py --model resnet32 ...
"""
import argparse
import os
import re
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
from fx_resnet import ResNetCifar  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet32")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--input", default="3x32x32")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--only", choices=("train", "infer"), help="run only one part (profiling)")
    a = ap.parse_args()
    m = re.fullmatch(r"resnet(\d+)", a.model)
    if not m or (int(m.group(1)) - 2) % 6 or int(m.group(1)) < 8:
        ap.error(f"--model {a.model!r} (expected resnetN with N = 6n+2)")
    depth = int(m.group(1))
    try:
        c, h, w = (int(v) for v in a.input.split("x"))
    except ValueError:
        ap.error(f"--input {a.input!r} (expected CxHxW)")
    if min(a.batch, a.steps, a.threads, a.classes) < 1 or a.warmup < 0:
        ap.error("batch, steps, threads, classes must be >= 1 and warmup >= 0")

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = ResNetCifar(depth, a.classes, c, a.width)
    x = torch.randn(a.batch, c, h, w)
    y = torch.randint(0, a.classes, (a.batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    what = f"resnet{depth} batch {a.batch} {c}x{h}x{w} threads {torch.get_num_threads()}"
    if a.width != 1.0:
        what += f" width {a.width:g}"

    model.train()
    times = []
    for s in range(a.warmup + a.steps if a.only != "infer" else 0):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if s >= a.warmup:
            times.append(time.perf_counter() - t0)
    if times:
        print(f"train  {what}: {a.batch / statistics.median(times):.1f} img/s (median of {a.steps} steps)", flush=True)

    model.eval()
    times = []
    with torch.no_grad():
        for s in range(a.warmup + a.steps if a.only != "train" else 0):
            t0 = time.perf_counter()
            model(x)
            if s >= a.warmup:
                times.append(time.perf_counter() - t0)
    if times:
        print(f"infer  {what}: {a.batch / statistics.median(times):.1f} img/s (median of {a.steps} steps)", flush=True)


if __name__ == "__main__":
    main()
