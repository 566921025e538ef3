"""Shared by the peer scripts: the ResNet20 weights and a batch of images, the `peer_step` bench
binary (bbed's side of every comparison), pinning to one core and the interleaved timing loop.

The bbed side runs as a subprocess (`RAYON_NUM_THREADS=1`, `taskset -c CORE`); the peer runs in
this process, pinned to the same core with one intra-op thread. Rounds alternate bbed, peer,
bbed, peer, ... so a load change on the shared machine hits both alike; the ratio is the median
of the per-round ratios.
"""
import json
import os
import struct
import subprocess
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
WEIGHTS = os.path.join(ROOT, "tests/data/resnet20_ref.safetensors")
MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
STD = np.array([0.2470, 0.2435, 0.2616], np.float32)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dt = {"F32": np.float32, "F64": np.float64, "I64": np.int64}[meta["dtype"]]
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dt).reshape(meta["shape"]).copy()
    return out


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dt = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}[arr.dtype]
        b = arr.tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def weights():
    return {k: v.astype(np.float32) for k, v in read_safetensors(WEIGHTS).items()}


def batch(n, seed=0, path="/tmp/bbed_peer_batch.safetensors"):
    """Seeded unit-scale images and labels, also written where peer_step reads them."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    write_safetensors(path, {"images": x, "labels": y})
    return x, y, path


def peer_step_binary():
    """Builds the bench binary once (release profile) and returns its path."""
    out = subprocess.run(
        ["cargo", "bench", "--bench", "peer_step", "--no-run", "--message-format=json"],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        m = json.loads(line)
        if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "peer_step" \
                and m.get("executable"):
            return m["executable"]
    raise SystemExit("cargo did not report the peer_step executable")


def pin(core):
    os.sched_setaffinity(0, {core})


def bbed(exe, core, mode, *args):
    env = dict(os.environ, RAYON_NUM_THREADS="1")
    cmd = ["taskset", "-c", str(core), exe, mode, "--weights", WEIGHTS, *map(str, args)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def timed(fn, steps, warmup=1):
    for _ in range(warmup):
        fn()
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return time.perf_counter() - t


def interleave(label, rounds, run_bbed, run_peer):
    """run_bbed() / run_peer() return images/s; prints each round and the median ratio."""
    ratios, ours, theirs = [], [], []
    for r in range(rounds):
        a = run_bbed()
        b = run_peer()
        ours.append(a)
        theirs.append(b)
        ratios.append(a / b)
        print(f"  {label} round {r + 1}: bbed {a:8.1f} img/s   peer {b:8.1f} img/s   ratio {a / b:.2f}",
              flush=True)
    print(f"{label}: bbed median {np.median(ours):.1f} img/s, peer median {np.median(theirs):.1f} "
          f"img/s, ratio bbed/peer {np.median(ratios):.2f} (load {os.getloadavg()[0]:.2f})", flush=True)
    return float(np.median(ratios))
