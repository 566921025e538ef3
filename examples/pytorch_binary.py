"""PyTorch reference for bbed's binarized weight layout (docs/weights.md).

Defines XNOR-Net and ABC-Net convolutions that compute exactly what bbed's engines compute
from the same safetensors tensors, builds the CIFAR ResNet-8 that `bbed --model resnet8
--input 1,28,28` describes as `--variant xnor` and `--variant abc --m 3 --n 3`, and saves for
each a weight file bbed loads plus the logits PyTorch computed on four fixed images:

    python3 examples/pytorch_binary.py --out tests/fixtures/pytorch_binary

writes resnet8_xnor.safetensors, resnet8_abc3x3.safetensors (weights) and
resnet8_xnor.io.safetensors, resnet8_abc3x3.io.safetensors (tensors "inputs" [4,1,28,28],
unit-scale images, and "logits" [4,10]). The test tests/engine/engine_pytorch.rs loads them and
compares bbed's logits with the recorded ones.

The rules the modules follow (each is bbed's, see docs/weights.md):
- sign(0) = +1 for activations and weights.
- XNOR: y = alpha_o * conv(sign(x), sign(W)), alpha_o = mean |W_o| over filter o (computed in
  float64, rounded to float32). Only the latent W is stored; alpha is derived.
- ABC: weight bases B_i = sign(W - mean(W) + u_i * std(W)) over the whole tensor (population
  std, float64), u_i = -1 + 2 (i-1)/(M-1) (u = 0 for M = 1); alphas solve the least-squares
  normal equations (B^T B) alpha = B^T W in float64; both are derived from W, never stored.
  Activation bases H(x + v_j) = +1 if clip(x + v_j, 0, 1) >= 0.5 else -1 with stored shifts
  `act_shift` (v_j) and scales `act_scale` (beta_j). y = sum_i sum_j (alpha_i beta_j) *
  conv(H(x + v_j), B_i), accumulated in that order (i outer) from zero.
- Binarized variants replace every ReLU with hardtanh; the first conv and the last linear layer
  stay full precision.

MKL-DNN is switched off so PyTorch's CPU convolution is the plain im2col + GEMM: on +/-1 inputs
every partial sum is then an integer below 2^24, exact in float32, as in bbed.
"""

import argparse
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

torch.backends.mkldnn.enabled = False


def sign(x):
    """+1 for x >= 0 (so sign(0) = +1), -1 below."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


class XnorConv2d(nn.Conv2d):
    """XNOR-Net conv: sign(x) convolved with alpha_o * sign(W_o). Stored: `weight` only."""

    def __init__(self, in_c, out_c, kernel, stride, padding):
        super().__init__(in_c, out_c, kernel, stride, padding, bias=False)

    def alpha(self):
        w = self.weight.detach().double()
        return w.abs().mean(dim=(1, 2, 3)).float()

    def forward(self, x):
        s = F.conv2d(sign(x), sign(self.weight), None, self.stride, self.padding)
        return s * self.alpha().view(1, -1, 1, 1)


def weight_shifts(m):
    """u_i in float32 arithmetic, as bbed computes them."""
    if m == 1:
        return [np.float32(0.0)]
    one, two = np.float32(1.0), np.float32(2.0)
    return [-one + np.float32(i) * two / np.float32(m - 1) for i in range(m)]


class AbcConv2d(nn.Conv2d):
    """ABC-Net conv with M weight bases and N activation bases. Stored: `weight` (latent),
    `act_shift` [N] and `act_scale` [N]."""

    def __init__(self, in_c, out_c, kernel, stride, padding, m, n):
        super().__init__(in_c, out_c, kernel, stride, padding, bias=False)
        self.m = m
        # bbed's initial spread: thresholds 0.5 - v_j at (j + 1/2) / N.
        self.act_shift = nn.Parameter(torch.tensor([0.5 - (j + 0.5) / n for j in range(n)]))
        self.act_scale = nn.Parameter(torch.ones(n))

    def weight_bases(self):
        w = self.weight.detach().double()
        mean = w.mean()
        std = ((w - mean) ** 2).mean().sqrt()
        bases = [sign((w - mean + float(u) * std).float()) for u in weight_shifts(self.m)]
        b = torch.stack([bi.flatten().double() for bi in bases], dim=1)  # [K, M]
        # Independent bases (true for these weights); bbed gives a dependent base alpha 0.
        alphas = torch.linalg.solve(b.T @ b, b.T @ w.flatten()).float()
        return bases, alphas

    def forward(self, x):
        bases, alphas = self.weight_bases()
        acts = [
            sign(torch.clamp(x + v, 0.0, 1.0) - 0.5) for v in self.act_shift.detach()
        ]
        y = None
        for i, b in enumerate(bases):
            for j, a in enumerate(acts):
                k = alphas[i] * self.act_scale.detach()[j]
                s = F.conv2d(a, b, None, self.stride, self.padding)
                y = k * s if y is None else y + k * s
        return y


class Block(nn.Module):
    """CIFAR basic block with the option-A shortcut (x[:, :, ::2, ::2], zero channels)."""

    def __init__(self, in_planes, planes, stride, conv):
        super().__init__()
        self.conv1 = conv(in_planes, planes, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv(planes, planes, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride, self.pad = stride, (planes - in_planes) // 2

    def forward(self, x):
        out = F.hardtanh(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x
        if self.stride != 1 or self.pad:
            short = F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, self.pad, self.pad))
        return F.hardtanh(out + short)


class ResNet8(nn.Module):
    """bbed's `resnet8` (names as its weight files use them) with binarized inner convs."""

    def __init__(self, conv, in_c=1, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_c, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(Block(16, 16, 1, conv))
        self.layer2 = nn.Sequential(Block(16, 32, 2, conv))
        self.layer3 = nn.Sequential(Block(32, 64, 2, conv))
        self.linear = nn.Linear(64, classes)

    def forward(self, x):
        # 1-channel built-ins have identity normalisation, so unit-scale images go in as is.
        x = F.hardtanh(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def randomize(model, gen):
    """Non-trivial batch-norm statistics and ABC activation parameters (as after training)."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                c = mod.num_features
                mod.weight.copy_(0.5 + torch.rand(c, generator=gen))
                mod.bias.copy_(0.4 * torch.rand(c, generator=gen) - 0.2)
                mod.running_mean.copy_(0.4 * torch.rand(c, generator=gen) - 0.2)
                mod.running_var.copy_(0.5 + torch.rand(c, generator=gen))
            if isinstance(mod, AbcConv2d):
                n = mod.act_shift.numel()
                mod.act_shift.add_(0.1 * torch.rand(n, generator=gen) - 0.05)
                mod.act_scale.copy_(0.5 + torch.rand(n, generator=gen))


def variant_metadata(kind, m, n):
    """The `variant` entry bbed writes and checks (options not given take bbed's defaults)."""
    return json.dumps(
        {"kind": kind, "options": {"m": m, "n": n, "fp_first_last": True, "shortcut": "binary"}}
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures/pytorch_binary")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.rand(4, 1, 28, 28, generator=gen)
    variants = [
        ("resnet8_xnor", "xnor", 1, 1, XnorConv2d),
        ("resnet8_abc3x3", "abc", 3, 3, lambda i, o, k, s, p: AbcConv2d(i, o, k, s, p, 3, 3)),
    ]
    for name, kind, m, n, conv in variants:
        torch.manual_seed(args.seed)
        model = ResNet8(conv).eval()
        randomize(model, gen)
        with torch.no_grad():
            logits = model(x)
        # The state dict as is: float32 tensors under bbed's names (num_batches_tracked is an
        # int64 bookkeeping tensor bbed skips).
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        meta = {"model": json.dumps("resnet8"), "variant": variant_metadata(kind, m, n)}
        save_file(state, os.path.join(args.out, f"{name}.safetensors"), metadata=meta)
        save_file(
            {"inputs": x.contiguous(), "logits": logits.contiguous()},
            os.path.join(args.out, f"{name}.io.safetensors"),
            metadata={"source": "examples/pytorch_binary.py", "torch": torch.__version__},
        )
        print(f"{name}: logits[0] = {logits[0].tolist()}")


if __name__ == "__main__":
    main()
