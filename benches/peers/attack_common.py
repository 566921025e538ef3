"""Shared by the attack peer scripts: the ResNet20 weights bbed initialises (read by parameter
name), 128 seeded CIFAR-sized test images written as a CIFAR-10 binary file for `bbed`, running
`bbed` pinned to the same core, and the timing/ratio printout.

Weights: `BBED_PEER_DIR=DIR cargo bench --bench attack_white` writes DIR/resnet20_init.safetensors
(bbed's random initialisation, seed 0); the scripts run `bbed` with `--weights` on that file, so
both sides use the same parameters by name.
"""
import argparse
import json
import os
import subprocess
import time

import numpy as np

from common import pin, read_safetensors as _read_any  # noqa: F401 (pin is re-exported)

MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
STD = np.array([0.2470, 0.2435, 0.2616], np.float32)
N_IMAGES = 128


def arg_parser():
    """The flags both scripts take: --peer-dir, --bbed, --core, --reps."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer-dir", required=True, help="holds resnet20_init.safetensors")
    ap.add_argument("--bbed", default="target/release/bbed")
    ap.add_argument("--core", type=int, default=0, help="the one core every run is pinned to")
    ap.add_argument("--reps", type=int, default=3, help="interleaved runs; the best counts")
    return ap


def read_safetensors(path):
    """`common.read_safetensors` with every tensor as float32 (the weights torch and JAX load)."""
    return {k: v.astype(np.float32) for k, v in _read_any(path).items()}


def images(seed=2):
    """128 seeded 8-bit images (NCHW)."""
    return np.random.default_rng(seed).integers(0, 256, (N_IMAGES, 3, 32, 32), dtype=np.uint8)


def write_cifar(peer_dir, u8, labels, name="test_batch.bin"):
    """The images as a CIFAR-10 binary file for bbed; returns its path."""
    path = os.path.join(peer_dir, name)
    with open(path, "wb") as f:
        for i in range(len(u8)):
            f.write(bytes([int(labels[i])]) + u8[i].tobytes())
    return path


def bbed_cmd(bbed, peer_dir, data, *rest):
    return [bbed, *rest[:1], "--model", "resnet20", "--weights",
            os.path.join(peer_dir, "resnet20_init.safetensors"), "--data", data,
            "--limit", str(N_IMAGES), *rest[1:]]


def bbed_logits(bbed, peer_dir, data):
    out = subprocess.run(bbed_cmd(bbed, peer_dir, data, "infer", "--format", "json"),
                         check=True, capture_output=True, text=True).stdout
    v = json.loads(out)
    return np.array([img["logits"] for img in v["images"]], np.float32)


def run_bbed(bbed, peer_dir, data, attack):
    """Seconds for one `bbed attack` run (one core: RAYON_NUM_THREADS=1 and the pinned affinity)
    and its JSON. Includes process start and loading (well under 1% of these runs)."""
    env = dict(os.environ, RAYON_NUM_THREADS="1")
    cmd = bbed_cmd(bbed, peer_dir, data, "attack", "--format", "json", "--chunk", "128", *attack)
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return time.perf_counter() - t, json.loads(out)


def check_logits(ours, theirs, what):
    d = float(np.abs(ours - theirs).max())
    print(f"logits {what} vs bbed: max |diff| {d:.2e}")
    if d > 1e-3:
        raise SystemExit(f"logits disagree ({d}): not the same network; stopping")


def report(rows):
    """rows: (name, unit, work, bbed seconds, peer name, peer seconds) with best-of times."""
    print(f"load average: {os.getloadavg()[0]:.2f} (1 min), cpu: {cpu_name()}")
    for name, unit, work, tb, peer, tp in rows:
        print(f"{name:28s} bbed {work / tb:9.1f} {unit}   {peer} {work / tp:9.1f} {unit}"
              f"   bbed/{peer} {tp / tb:5.2f}x")


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"
