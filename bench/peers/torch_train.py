#!/usr/bin/python3
"""PyTorch peer of `onespike-train fit` for bench/train_bench.sh: training images/s of the same
network, batch and input size, on one thread count.

  /usr/bin/python3 bench/peers/torch_train.py --mode ann|snn [--threads N] [--images N]
      [--warmup N] [--batch 32] [--input 64] [--classes 21] [--timesteps 5]
      [--width-mult 0.5] [--units 1] [--unit-at 2] [--snn-layout merged|step]
      [--max-seconds S]

Prints human-readable lines on stderr and one JSON object on stdout.

The model mirrors core/train/arch.c (resnet18 recipe) and the conversion of core/train/train.c:
  * stem: conv3x3 (3 -> round(64 w)), stride 2 from 64 px (stride 1 below), BN, ReLU, and
    2x2 max pooling from 64 px; stages of 2 basic blocks at widths 64/128/256/512 x w, stride 2
    at the first block of stages 2..4, 1x1 conv + BN shortcut where shape changes; M Units
    (identity basic blocks) at the end of stage AS; global average pooling; linear.
  * ANN: convs without bias followed by BatchNorm (train mode), ReLU.
  * SNN (converted): BatchNorm folded (convs with bias), ReLU -> LIF with one trainable
    threshold and leak per layer, soft reset, T steps, BPTT with the piecewise-linear surrogate
    dS/du = gamma/thr * max(0, 1 - |u/thr - 1|) (gamma 0.3) and dS/dthr = -(u/thr) dS/du, as
    core/train/grad.c; the gradient also flows through the reset (v = u - thr*s). The first conv sees
    the same image at every step, so it runs once per image (core/train/tnet.c's static layers);
    logits are the last linear layer's outputs summed over T.
  * loss: cross-entropy with label smoothing 0.1; AdamW (betas 0.9/0.999, eps 1e-8, weight
    decay 0.05 on conv/linear weights only, as core/train/params.c); thresholds clamped >= 1e-3 and
    leaks to [0.05, 1] after each step. No learning-rate schedule (a per-step scalar in ours).

Inputs are random normalised images (N(0,1)) with random labels, generated before timing:
data loading and augmentation are excluded. Timed: zero_grad, forward, loss, backward,
optimizer step (+ clamps), for --images images after --warmup untimed batches.

--snn-layout merged (default) folds the T steps into the batch for everything but the LIF
recurrence (one conv call on T*N images, the usual multi-step PyTorch SNN layout); step runs
each conv once per time step on N images, as core/train/tnet.c does.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

GAMMA = 0.3
MIN_THR, MIN_LEAK = 1e-3, 0.05


def channels(base, w):
    return max(4, int(round(base * w)))  # lround: .5 cases do not occur for these widths


class SpikeFn(torch.autograd.Function):
    """s = (u > thr); backward: the piecewise-linear surrogate of core/train/grad.c."""

    @staticmethod
    def forward(ctx, u, thr):
        ctx.save_for_backward(u, thr)
        return (u > thr).to(u.dtype)

    @staticmethod
    def backward(ctx, g):
        u, thr = ctx.saved_tensors
        r = u / thr
        dsdu = (GAMMA / thr) * torch.clamp(1.0 - torch.abs(r - 1.0), min=0.0)
        gu = g * dsdu
        gthr = -(gu * r).sum().reshape(thr.shape)
        return gu, gthr


class LIF(nn.Module):
    """Input [T*N, ...], step after step; output spikes, same shape."""

    def __init__(self, T, thr=1.0, leak=1.0):
        super().__init__()
        self.T = T
        self.threshold = nn.Parameter(torch.tensor(float(thr)))
        self.leak = nn.Parameter(torch.tensor(float(leak)))

    def forward(self, x):
        shape = x.shape
        x = x.reshape(self.T, -1, *shape[1:])
        v = None
        out = []
        for t in range(self.T):
            u = x[t] if v is None else self.leak * v + x[t]
            s = SpikeFn.apply(u, self.threshold)
            v = u - self.threshold * s
            out.append(s)
        return torch.stack(out).reshape(shape)


class Block(nn.Module):
    def __init__(self, cin, cout, stride, snn, T, act):
        super().__init__()
        bias = snn
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=bias)
        self.b1 = nn.Identity() if snn else nn.BatchNorm2d(cout)
        self.a1 = act()
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=bias)
        self.b2 = nn.Identity() if snn else nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=bias),
                                       nn.Identity() if snn else nn.BatchNorm2d(cout))
        self.a2 = act()

    def forward(self, x):
        y = self.b2(self.c2(self.a1(self.b1(self.c1(x)))))
        return self.a2(y + (self.short(x) if self.short is not None else x))


class StepWise(nn.Module):
    """Apply a stateless module to each of T steps of a [T*N, ...] tensor separately."""

    def __init__(self, m, T):
        super().__init__()
        self.m, self.T = m, T

    def forward(self, x):
        return torch.cat([self.m(c) for c in x.chunk(self.T)])


class ResNet18(nn.Module):
    def __init__(self, w, input_side, classes, units, unit_at, snn=False, T=1, layout="merged"):
        super().__init__()
        self.snn, self.T = snn, T
        act = (lambda: LIF(T)) if snn else (lambda: nn.ReLU(inplace=True))
        large = input_side >= 64
        c0 = channels(64, w)
        self.stem_conv = nn.Conv2d(3, c0, 3, 2 if large else 1, 1, bias=snn)
        self.stem_bn = nn.Identity() if snn else nn.BatchNorm2d(c0)
        self.stem_act = act()
        self.stem_pool = nn.MaxPool2d(2) if large else nn.Identity()
        blocks, cin = [], c0
        for s, base in enumerate((64, 128, 256, 512)):
            cout = channels(base, w)
            for b in range(2):
                blocks.append(Block(cin, cout, 2 if (b == 0 and s > 0) else 1, snn, T, act))
                cin = cout
            if s + 1 == unit_at:
                blocks += [Block(cin, cin, 1, snn, T, act) for _ in range(units)]
        if snn and layout == "step":  # convs per time step, as core/train/tnet.c
            for blk in blocks:
                for name in ("c1", "c2"):
                    setattr(blk, name, StepWise(getattr(blk, name), T))
                if blk.short is not None:
                    blk.short = StepWise(blk.short, T)
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.stem_bn(self.stem_conv(x))  # static: once per image
        if self.snn:
            x = x.unsqueeze(0).expand(self.T, *x.shape).reshape(-1, *x.shape[1:])
        x = self.stem_pool(self.stem_act(x))
        x = self.blocks(x)
        x = self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
        if self.snn:
            x = x.reshape(self.T, -1, x.shape[-1]).sum(0)
        return x


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("ann", "snn"), required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--images", type=int, default=320, help="timed images (whole batches)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed batches first")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--input", type=int, default=64)
    ap.add_argument("--classes", type=int, default=21)
    ap.add_argument("--timesteps", type=int, default=5)
    ap.add_argument("--width-mult", type=float, default=0.5)
    ap.add_argument("--units", type=int, default=1)
    ap.add_argument("--unit-at", type=int, default=2)
    ap.add_argument("--snn-layout", choices=("merged", "step"), default="merged")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-seconds", type=float, default=0,
                    help="stop timing after this many seconds (whole batches; 0: no limit)")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(a.seed)
    snn = a.mode == "snn"
    T = a.timesteps if snn else 1
    model = ResNet18(a.width_mult, a.input, a.classes, a.units, a.unit_at, snn, T, a.snn_layout)
    model.train()
    if snn:  # thresholds of the order the conversion gives, so some neurons fire
        for m in model.modules():
            if isinstance(m, LIF):
                m.threshold.data.fill_(0.5)
    decay, no_decay, lif = [], [], []
    for name, p in model.named_parameters():
        if name.endswith("threshold") or name.endswith("leak"):
            lif.append(p)
        elif p.dim() > 1:
            decay.append(p)
        else:
            no_decay.append(p)
    lr = 2e-4 if snn else 2e-3
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": no_decay + lif, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.999), eps=1e-8)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    pool = [(torch.randn(a.batch, 3, a.input, a.input),
             torch.randint(0, a.classes, (a.batch,))) for _ in range(4)]

    def step(i):
        x, y = pool[i % len(pool)]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        if snn:
            with torch.no_grad():
                for m in model.modules():
                    if isinstance(m, LIF):
                        m.threshold.clamp_(min=MIN_THR)
                        m.leak.clamp_(MIN_LEAK, 1.0)
        return loss.item()

    for i in range(a.warmup):
        step(i)
    want = max(1, a.images // a.batch)
    t0 = time.perf_counter()
    nb = 0
    while nb < want:
        loss = step(nb)
        nb += 1
        if a.max_seconds > 0 and time.perf_counter() - t0 > a.max_seconds:
            break
    dt = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    out = {"mode": a.mode, "timesteps": T, "threads": a.threads, "batch": a.batch,
           "images": nb * a.batch, "seconds": dt, "images_per_s": nb * a.batch / dt,
           "params": n_params, "loss": loss, "capped": nb < want,
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "layout": a.snn_layout if snn else None,
           "torch": torch.__version__}
    print(f"torch {torch.__version__} {a.mode} T={T} threads={a.threads}: {nb * a.batch} images "
          f"in {dt:.2f} s = {nb * a.batch / dt:.1f} img/s ({n_params} parameters)",
          file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
