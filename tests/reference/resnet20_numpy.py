#!/usr/bin/env python3
"""Independent NumPy (float64) forward pass of the CIFAR ResNet20 (option-A shortcuts, the
akamaster/pytorch_resnet_cifar10 layout and state-dict names) on fixed pseudo-random weights.

Writes tests/data/resnet20_ref.safetensors (weights, f32) and tests/data/resnet20_ref_io.safetensors
(`input`: 4 unit-scale images [4,3,32,32] f32; `logits`: f64 [4,10]). The Rust test
`tests/engine_known_answer.rs` runs the float engine on the same weights and input and compares.

Run: python3 tests/reference/resnet20_numpy.py   (needs numpy and safetensors)
Nothing here shares code with the Rust engine: convolution is a direct einsum over padded windows.
"""
import os
import numpy as np
from safetensors.numpy import save_file

rng = np.random.default_rng(20)
MEAN = np.array([0.4914, 0.4822, 0.4465])
STD = np.array([0.2470, 0.2435, 0.2616])
EPS = 1e-5
W = {}


def conv_w(name, o, i, k):
    W[name + ".weight"] = (rng.standard_normal((o, i, k, k)) * np.sqrt(2.0 / (i * k * k))).astype(np.float32)


def bn(name, c):
    W[name + ".weight"] = (0.5 + 0.1 * rng.standard_normal(c)).astype(np.float32)
    W[name + ".bias"] = (0.1 * rng.standard_normal(c)).astype(np.float32)
    W[name + ".running_mean"] = (0.1 * rng.standard_normal(c)).astype(np.float32)
    W[name + ".running_var"] = rng.uniform(0.5, 1.5, c).astype(np.float32)


conv_w("conv1", 16, 3, 3)
bn("bn1", 16)
in_c = 16
for li, planes in enumerate([16, 32, 64], start=1):
    for b in range(3):
        p = f"layer{li}.{b}"
        conv_w(p + ".conv1", planes, in_c, 3)
        bn(p + ".bn1", planes)
        conv_w(p + ".conv2", planes, planes, 3)
        bn(p + ".bn2", planes)
        in_c = planes
W["linear.weight"] = (rng.standard_normal((10, 64)) * np.sqrt(1.0 / 64)).astype(np.float32)
W["linear.bias"] = (0.1 * rng.standard_normal(10)).astype(np.float32)

x_unit = rng.uniform(0.0, 1.0, (4, 3, 32, 32)).astype(np.float32)


def g(name):
    return W[name].astype(np.float64)


def conv(x, w, stride, pad):
    n, c, h, wd = x.shape
    o, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - k) // stride + 1
    ow = (wd + 2 * pad - k) // stride + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(k):
        for j in range(k):
            patch = xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return out


def batchnorm(x, name):
    s = g(name + ".weight") / np.sqrt(g(name + ".running_var") + EPS)
    t = g(name + ".bias") - g(name + ".running_mean") * s
    return x * s[None, :, None, None] + t[None, :, None, None]


relu = lambda v: np.maximum(v, 0.0)

x = (x_unit.astype(np.float64) - MEAN[None, :, None, None]) / STD[None, :, None, None]
x = relu(batchnorm(conv(x, g("conv1.weight"), 1, 1), "bn1"))
in_c = 16
for li, planes in enumerate([16, 32, 64], start=1):
    for b in range(3):
        p = f"layer{li}.{b}"
        stride = 2 if (li > 1 and b == 0) else 1
        out = relu(batchnorm(conv(x, g(p + ".conv1.weight"), stride, 1), p + ".bn1"))
        out = batchnorm(conv(out, g(p + ".conv2.weight"), 1, 1), p + ".bn2")
        if stride != 1 or in_c != planes:
            sc = x[:, :, ::2, ::2]
            padc = planes // 4
            sc = np.pad(sc, ((0, 0), (padc, padc), (0, 0), (0, 0)))
        else:
            sc = x
        x = relu(out + sc)
        in_c = planes
x = x.mean(axis=(2, 3))
logits = x @ g("linear.weight").T + g("linear.bias")

here = os.path.dirname(os.path.abspath(__file__))
data = os.path.join(here, "..", "data")
save_file(W, os.path.join(data, "resnet20_ref.safetensors"))
save_file({"input": x_unit, "logits": logits}, os.path.join(data, "resnet20_ref_io.safetensors"))
print(logits)
