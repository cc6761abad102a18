"""A onespike model file as a PyTorch (1.13) nn.Module: the same network and weights at T = 1.

    from onespike_torch import OneSpikeNet, load_scripted
    net = OneSpikeNet.from_file("models/ucm-msresnet18-t1.safetensors").eval()
    logits = net(x)                       # x: [N, C, H, W] float32, normalised CHW
    ts = load_scripted(path, example)     # TorchScript: torch.jit.trace + torch.jit.freeze

Layer semantics follow core/engine/layers.c through bench/peers/onespike_file.py (BatchNorm folded where
core/engine/net.c folds it); a lif layer at T = 1 is `(x > threshold).float()`, the strict comparison of
os_lif_step with the membrane starting at 0. The output is the last linear layer's (the logits).
"""
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onespike_file  # noqa: E402


class Spike(nn.Module):
    def __init__(self, threshold):
        super().__init__()
        self.threshold = float(threshold)  # a float32 value, exact as a Python float

    def forward(self, x):
        return (x > self.threshold).to(x.dtype)


class Affine(nn.Module):
    """A BatchNorm that core/engine/net.c does not fold: x * scale + shift per channel."""

    def __init__(self, scale, shift):
        super().__init__()
        self.register_buffer("scale", torch.from_numpy(scale.copy()).view(1, -1, 1, 1))
        self.register_buffer("shift", torch.from_numpy(shift.copy()).view(1, -1, 1, 1))

    def forward(self, x):
        return x * self.scale + self.shift


class Linear(nn.Module):
    """Flatten, then the linear layer (core os_linear flattens its CHW input)."""

    def __init__(self, weight, bias):
        super().__init__()
        self.fc = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(weight))
            if bias is not None:
                self.fc.bias.copy_(torch.from_numpy(bias))

    def forward(self, x):
        return self.fc(torch.flatten(x, 1))


class OneSpikeNet(nn.Module):
    """Runs the layer graph in file order; each layer reads the outputs named by its sources."""

    def __init__(self, model):
        super().__init__()
        self.labels = list(model["labels"])
        self.srcs = []
        self.kinds = []
        mods = []
        for L in model["layers"]:
            op = L["op"]
            self.srcs.append(list(L["src"]))
            self.kinds.append(op)
            if op == "conv":
                out, cin, kh, kw = L["weight"].shape
                m = nn.Conv2d(cin, out, (kh, kw), stride=L["stride"], padding=L["pad"],
                              bias=L["bias"] is not None)
                with torch.no_grad():
                    m.weight.copy_(torch.from_numpy(L["weight"]))
                    if L["bias"] is not None:
                        m.bias.copy_(torch.from_numpy(L["bias"]))
            elif op == "bn":
                m = nn.Identity() if L["folded"] else Affine(L["scale"], L["shift"])
            elif op == "relu":
                m = nn.ReLU()
            elif op == "lif":
                m = Spike(L["threshold"])
            elif op == "maxpool":
                m = nn.MaxPool2d(L["kernel"], L["stride"], L["pad"])
            elif op == "avgpool":
                m = nn.AvgPool2d(L["kernel"], L["stride"], L["pad"], count_include_pad=True)
            elif op == "gap":
                m = nn.AdaptiveAvgPool2d(1)
            elif op == "linear":
                m = Linear(L["weight"], L["bias"])
            elif op == "add":
                m = nn.Identity()
            else:
                raise onespike_file.ModelError("layer %r: op %r has no PyTorch mapping"
                                               % (L["name"], op))
            mods.append(m)
        self.layers = nn.ModuleList(mods)

    @classmethod
    def from_file(cls, path):
        return cls(onespike_file.load(path))

    def forward(self, x):
        outs = []
        for i, m in enumerate(self.layers):
            src = self.srcs[i]
            a = x if src[0] == onespike_file.INPUT else outs[src[0]]
            if self.kinds[i] == "add":
                b = x if src[1] == onespike_file.INPUT else outs[src[1]]
                y = a + b
            else:
                y = m(a)
            outs.append(y)
        return outs[-1]


def script(net, example):
    """TorchScript of `net` (in eval mode): traced on `example`, then frozen (weights become
    constants, conv/linear ops can be folded). The trace keeps the batch dimension free."""
    with torch.no_grad():
        return torch.jit.freeze(torch.jit.trace(net.eval(), example))


def load_scripted(path, example):
    """TorchScript of the network in a model file."""
    return script(OneSpikeNet.from_file(path), example)
