"""bbed's white-box attacks against torchattacks on one core: the same ResNet20 weights (bbed's
random initialisation, read by parameter name) and the same 128 images, labelled with the
model's clean predictions so every image is attacked. Logits are checked first (torch vs
`bbed infer`). Then, interleaved (bbed, torch, bbed, torch, ...; best of --reps each), with
bbed's settings equal to torchattacks':
  FGSM eps 8/255; PGD L-inf eps 8/255, alpha 2/255, 10 steps, no random start;
  DeepFool 50 steps, overshoot 0.02; CW-L2 c 1, kappa 0, 50 steps, lr 0.01 (bbed: one binary
  search step, no early abort).
Both sides are timed to the same output: adversarial images and the model's predictions on them
(bbed computes these in every run; torchattacks returns the images, so its timing includes one
forward pass over them). Prints img/s of both and the ratio bbed/torch (> 1: bbed faster). Not
run in CI.
Accuracy after DeepFool differs (bbed 0.000, torchattacks 0.250): torchattacks' clipped per-step
update leaves images stalled on the decision boundary, where bbed's (LTS4's) + 1e-4 step length
carries them across; deepfool_semantics.py takes the difference apart.

Usage:
  BBED_PEER_DIR=/tmp/peers cargo bench --bench attack_white   # writes the weights
  cargo build --release
  python3 benches/peers/attacks_torch.py --peer-dir /tmp/peers [--core 0] [--reps 3]
Needs: pip install torch torchattacks numpy
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attack_common as common  # noqa: E402

ATTACKS = [
    # name, unit, bbed flags, torchattacks constructor
    ("FGSM", "img/s", ["fgsm", "--eps", "8", "--eps-scale", "pixel"],
     lambda ta, m: ta.FGSM(m, eps=8 / 255)),
    ("PGD Linf 10 it, no rand", "img/s",
     ["pgd", "--eps", "8", "--eps-scale", "pixel", "--step", "2", "--step-scale", "pixel",
      "--iterations", "10", "--no-random-start", "--trace-every", "0"],
     lambda ta, m: ta.PGD(m, eps=8 / 255, alpha=2 / 255, steps=10, random_start=False)),
    ("DeepFool 50", "img/s", ["deepfool", "--max-iterations", "50"],
     lambda ta, m: ta.DeepFool(m, steps=50, overshoot=0.02)),
    ("CW-L2 c=1 50 steps", "img/s",
     ["cw", "--c", "1", "--binary-search-steps", "1", "--max-iterations", "50",
      "--learning-rate", "0.01", "--abort-early", "false"],
     lambda ta, m: ta.CW(m, c=1, kappa=0, steps=50, lr=0.01)),
]


def resnet20(torch, p):
    nn, F = torch.nn, torch.nn.functional

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.pad = cout // 4 if (stride != 1 or cin != cout) else 0

        def forward(self, x):
            h = F.relu(self.bn1(self.conv1(x)))
            h = self.bn2(self.conv2(h))
            sc = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad)) if self.pad else x
            return F.relu(h + sc)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor(common.MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(common.STD).view(1, 3, 1, 1))
            self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            cin, layers = 16, []
            for li, planes in enumerate([16, 32, 64], start=1):
                blocks = []
                for bi in range(3):
                    blocks.append(Block(cin, planes, 2 if (li > 1 and bi == 0) else 1))
                    cin = planes
                layers.append(nn.Sequential(*blocks))
            self.layer1, self.layer2, self.layer3 = layers
            self.linear = nn.Linear(64, 10)

        def forward(self, x):
            x = (x - self.mean) / self.std
            x = F.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))

    m = Net()
    state = m.state_dict()
    for k in state:
        if k in ("mean", "std") or k.endswith("num_batches_tracked"):
            continue
        state[k] = torch.from_numpy(p[k].copy()).reshape(state[k].shape)
    m.load_state_dict(state)
    return m.eval()


def setup(args):
    """One pinned core and one torch thread; the model, the unit-scale images, their clean
    predictions as labels, and the CIFAR file bbed reads, after checking torch's logits against
    bbed's. Returns (torch, model, x, y, data)."""
    common.pin(args.core)
    import torch
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)

    p = common.read_safetensors(os.path.join(args.peer_dir, "resnet20_init.safetensors"))
    model = resnet20(torch, p)
    u8 = common.images()
    x = torch.from_numpy(u8.astype(np.float32) / 255.0)
    with torch.no_grad():
        z = model(x).numpy()
    labels = z.argmax(1)
    data = common.write_cifar(args.peer_dir, u8, labels)
    common.check_logits(z, common.bbed_logits(args.bbed, args.peer_dir, data), "torch")
    return torch, model, x, torch.from_numpy(labels.astype(np.int64)), data


def main():
    ap = common.arg_parser()
    ap.add_argument("--only", help="comma-separated attack names (FGSM, PGD, DeepFool, CW)")
    args = ap.parse_args()
    torch, model, x, y, data = setup(args)
    import torchattacks as ta

    rows = []
    for name, unit, flags, make in ATTACKS:
        if args.only and not any(name.lower().startswith(o.lower()) for o in args.only.split(",")):
            continue
        atk = make(ta, model)
        tb, tt = float("inf"), float("inf")
        for _ in range(args.reps):
            secs, rep = common.run_bbed(args.bbed, args.peer_dir, data, flags)
            tb = min(tb, secs)
            # The prediction on the adversarial images is part of the timed work: bbed's run
            # ends with it (every record carries adv_pred), torchattacks returns images only.
            t = time.perf_counter()
            adv = atk(x, y)
            with torch.no_grad():
                pred = model(adv).argmax(1)
            tt = min(tt, time.perf_counter() - t)
        acc_t = float((pred == y).float().mean())
        print(f"{name}: accuracy after attack bbed {rep['accuracy_adv']:.3f} torch {acc_t:.3f}",
              flush=True)
        rows.append((name, unit, common.N_IMAGES, tb, "torch", tt))
        if name.startswith("PGD"):
            rows.append((name + " (img-it/s)", "img-it/s", common.N_IMAGES * 10, tb, "torch", tt))
    common.report(rows)


if __name__ == "__main__":
    main()
