"""bbed against PyTorch (CPU, one core): training ResNet20 float (SGD) and XNOR (STE, Adam), and
the attack gradient path (eval-mode logits + d(cross-entropy)/d(input), no parameter gradients).

Same network and weights (tests/data/resnet20_ref.safetensors, a CIFAR ResNet20 state dict; the
XNOR net takes its latent weights from it), same 128 seeded images and labels. Before timing it
checks that the two agree: eval logits (float and XNOR), one training-mode loss and gradient norms,
and the input gradient. Then it times bbed (benches/peer_step.rs, pinned with taskset, one rayon
thread) and PyTorch (this process, pinned to the same core, torch.set_num_threads(1)) in
alternating rounds and prints img/s and the ratio bbed / PyTorch (median over rounds).

The XNOR net is the one bbed trains (src/engine/ops/xnor.rs, src/variant): every ReLU becomes
hardtanh; every conv except the first is binarized: activations sign(x) (sign(0) = +1) with the
straight-through gradient 1{|x| <= 1}; weights alpha_o * sign(W_o) with alpha_o = mean |W_o|, the
gradient through both alpha and the clipped sign STE (autograd of the same expression).

Usage: python3 benches/peers/train_torch.py [--core 1] [--rounds 3] [--steps 5] [--what train,grad]
Needs: pip install torch numpy; cargo (builds the peer_step bench once). Not run in CI.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


class SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g.dtype)


class Conv(nn.Conv2d):
    def __init__(self, cin, cout, stride, binary):
        super().__init__(cin, cout, 3, stride, 1, bias=False)
        self.binary = binary

    def forward(self, x):
        if not self.binary:
            return super().forward(x)
        alpha = self.weight.abs().mean(dim=(1, 2, 3), keepdim=True)
        wb = alpha * SignSTE.apply(self.weight)
        return F.conv2d(SignSTE.apply(x), wb, None, self.stride, self.padding)


class Block(nn.Module):
    def __init__(self, cin, cout, stride, xnor):
        super().__init__()
        self.conv1 = Conv(cin, cout, stride, xnor)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = Conv(cout, cout, 1, xnor)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = nn.Hardtanh() if xnor else nn.ReLU()
        self.pad = (cout - cin) // 2 if (stride != 1 or cin != cout) else None
        self.stride = stride

    def forward(self, x):
        h = self.act(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        if self.pad is not None:
            sc = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.pad, self.pad))
        else:
            sc = x
        return self.act(h + sc)


class ResNet20(nn.Module):
    def __init__(self, xnor):
        super().__init__()
        self.register_buffer("mean", torch.tensor(common.MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(common.STD).view(1, 3, 1, 1))
        self.conv1 = Conv(3, 16, 1, False)
        self.bn1 = nn.BatchNorm2d(16)
        self.act = nn.Hardtanh() if xnor else nn.ReLU()
        layers, cin = [], 16
        for planes in (16, 32, 64):
            blocks = []
            for b in range(3):
                stride = 2 if planes != 16 and b == 0 else 1
                blocks.append(Block(cin, planes, stride, xnor))
                cin = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(64, 10)

    def forward(self, x):
        x = (x - self.mean) / self.std
        x = self.act(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))


def model(xnor):
    m = ResNet20(xnor)
    sd = {k: torch.from_numpy(v) for k, v in common.weights().items()}
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert not unexpected and set(missing) <= {"mean", "std"}, (missing, unexpected)
    return m


def check(exe, core, x, y, path):
    for kind in ("float", "xnor"):
        m = model(kind == "xnor").eval()
        with torch.no_grad():
            ours = np.array(common.bbed(exe, core, f"logits-{kind}", "--data", path, "--batch", 8)["logits"])
            theirs = m(torch.from_numpy(x[:8])).numpy()
        err = np.abs(ours - theirs).max()
        print(f"{kind}: eval logits max |bbed - torch| = {err:.2e}")
        assert err < 1e-3, f"{kind}: logits disagree"
        m.train()
        out = common.bbed(exe, core, f"loss-{kind}", "--data", path, "--batch", len(y))
        loss = F.cross_entropy(m(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        print(f"{kind}: train loss bbed {out['loss']:.6f} torch {loss.item():.6f}")
        assert abs(out["loss"] - loss.item()) < 1e-4 * max(1.0, abs(loss.item()))
        for name, ours_n in out["grad_norm"].items():
            t = dict(m.named_parameters())[name].grad.norm().item()
            print(f"  grad norm {name}: bbed {ours_n:.6e} torch {t:.6e}")
            # f32 rounding accumulated through ~20 layers: on the reference weights torch's own
            # f32 bn1.weight gradient norm is 4e-4 off its float64 value, bbed's 1.1e-3.
            assert abs(ours_n - t) <= 5e-3 * max(abs(t), 1e-6) + 1e-7, name
    m = model(False).eval()
    xt = torch.from_numpy(x[:8]).requires_grad_(True)
    F.cross_entropy(m(xt), torch.from_numpy(y[:8])).backward()
    ours = np.array(common.bbed(exe, core, "grad-values", "--data", path, "--batch", 8)["grad"])
    theirs = xt.grad.numpy().reshape(-1)
    err = np.abs(ours - theirs).max() / np.abs(theirs).max()
    print(f"float: input gradient max rel |bbed - torch| = {err:.2e}")
    assert err < 1e-3, "input gradients disagree"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--core", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--what", default="train,grad")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    common.pin(args.core)
    exe = common.peer_step_binary()
    x, y, path = common.batch(args.batch)
    print(f"torch {torch.__version__}, core {args.core}, batch {args.batch}, load {os.getloadavg()}")
    check(exe, args.core, x, y, path)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    n = args.batch * args.steps

    def train_peer(xnor):
        m = model(xnor).train()
        opt = (torch.optim.Adam(m.parameters(), lr=1e-3) if xnor else
               torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4))

        def step():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(m(xt), yt).backward()
            opt.step()
        return n / common.timed(step, args.steps)

    def grad_peer():
        m = model(False).eval()
        for p in m.parameters():
            p.requires_grad_(False)

        def step():
            xg = xt.clone().requires_grad_(True)
            F.cross_entropy(m(xg), yt).backward()
            return xg.grad
        return n / common.timed(step, args.steps)

    def ours(mode):
        return common.bbed(exe, args.core, mode, "--data", path, "--batch", args.batch,
                           "--steps", args.steps)["img_per_s"]

    what = args.what.split(",")
    if "train" in what:
        common.interleave("train float SGD", args.rounds, lambda: ours("train-float"),
                          lambda: train_peer(False))
        common.interleave("train XNOR Adam", args.rounds, lambda: ours("train-xnor"),
                          lambda: train_peer(True))
    if "grad" in what:
        common.interleave("input gradient (eval)", args.rounds, lambda: ours("grad-float"),
                          grad_peer)


if __name__ == "__main__":
    main()
