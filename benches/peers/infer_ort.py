"""bbed float inference against onnxruntime on one core, interleaved, plus the XNOR engine
against this core's popcount bound.

The onnxruntime graph is benches/onnx/resnet20_ort.py's (BN folded, logits checked there against
the NumPy float64 reference); here its logits are also checked against bbed's on the same
images, then bbed (benches/peer_step.rs `infer-float`, taskset-pinned, one rayon thread) and
onnxruntime (intra-op 1, inter-op 1, this process pinned to the same core) alternate. Last, the
XNOR engine's img/s beside the bound `popcount` prints: the register-only XOR + popcount + add
peak of the vector ALUs / 40.1 M binary MACs per image (the streaming rate of two L1-resident
vectors is printed too; it is not a bound, loads limit it).

Usage: python3 benches/peers/infer_ort.py [--core 1] [--rounds 3] [--steps 20]
Needs: pip install onnxruntime onnx numpy; cargo. Not run in CI.
"""
import argparse
import importlib.util
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

spec = importlib.util.spec_from_file_location(
    "resnet20_ort", os.path.join(common.ROOT, "benches/onnx/resnet20_ort.py"))
ortb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ortb)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--core", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    common.pin(args.core)
    exe = common.peer_step_binary()
    x, _, path = common.batch(args.batch)
    sess = ortb.session(ortb.build(common.weights()), 1)
    print(f"onnxruntime {ortb.ort.__version__}, core {args.core}, batch {args.batch}, "
          f"load {os.getloadavg()}")
    ours = np.array(common.bbed(exe, args.core, "logits-float", "--data", path, "--batch", 8)["logits"])
    theirs = sess.run(["logits"], {"input": x[:8]})[0]
    err = np.abs(ours - theirs).max()
    print(f"logits max |bbed - onnxruntime| = {err:.2e}")
    assert err < 1e-3
    n = args.batch * args.steps

    def run(mode):
        return common.bbed(exe, args.core, mode, "--data", path, "--batch", args.batch,
                           "--steps", args.steps)["img_per_s"]

    common.interleave("float inference", args.rounds, lambda: run("infer-float"),
                      lambda: n / common.timed(lambda: sess.run(["logits"], {"input": x}),
                                               args.steps, warmup=3))
    pc = common.bbed(exe, args.core, "popcount")
    xnor = [run("infer-xnor") for _ in range(args.rounds)]
    bound = pc["resnet20_xnor_bound_img_per_s"]
    print(f"XNOR inference: median {np.median(xnor):.0f} img/s; popcount path {pc['path']}; "
          f"core at {pc['core_ghz']:.2f} GHz; streaming {pc['stream_binary_macs_per_s']:.3e} "
          f"binary MACs/s; ALU peak {pc['peak_binary_macs_per_s']:.3e} binary MACs/s "
          f"({pc['peak_binary_macs_per_cycle']:.0f} per cycle) -> bound {bound:.0f} img/s; "
          f"XNOR at {np.median(xnor) / bound:.0%} of the bound")


if __name__ == "__main__":
    main()
