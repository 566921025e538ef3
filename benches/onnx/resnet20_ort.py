"""Time onnxruntime on the CIFAR ResNet20 with the weights of tests/data/resnet20_ref.safetensors.

The graph is built with onnx.helper: BN folded into the preceding conv (w' = w * s, b' = beta -
mean * s, s = gamma / sqrt(var + 1e-5)), ReLU, option-A shortcuts (x[:, :, ::2, ::2] zero-padded
by planes/4 channels on each side), global average pool, linear. The input normalisation
((x - mean) / std per channel, CIFAR-10 statistics) is part of the graph, as in bbed's engine.
Before timing, the logits on the four reference images of tests/data/resnet20_ref_io.safetensors
are checked against the stored NumPy float64 logits.

Usage: python3 benches/onnx/resnet20_ort.py [--batch 128] [--iters 20]
Needs: pip install onnxruntime onnx numpy
"""
import argparse
import json
import os
import struct
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
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
        dt = {"F32": np.float32, "F64": np.float64}[meta["dtype"]]
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dt).reshape(meta["shape"]).astype(np.float32)
    return out


def build(p):
    nodes, inits = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def conv_bn(x, conv, bn, stride, out):
        w = p[conv + ".weight"]
        s = p[bn + ".weight"] / np.sqrt(p[bn + ".running_var"] + 1e-5)
        wf = (w * s[:, None, None, None]).astype(np.float32)
        bf = (p[bn + ".bias"] - p[bn + ".running_mean"] * s).astype(np.float32)
        nodes.append(helper.make_node(
            "Conv", [x, const(conv + ".wf", wf), const(conv + ".bf", bf)], [out],
            kernel_shape=[3, 3], strides=[stride, stride], pads=[1, 1, 1, 1]))
        return out

    def relu(x, out):
        nodes.append(helper.make_node("Relu", [x], [out]))
        return out

    nodes.append(helper.make_node("Sub", ["input", const("mean", MEAN.reshape(1, 3, 1, 1))], ["xc"]))
    nodes.append(helper.make_node("Div", ["xc", const("std", STD.reshape(1, 3, 1, 1))], ["xn"]))
    x = relu(conv_bn("xn", "conv1", "bn1", 1, "c1"), "r1")
    in_planes = 16
    for li, planes in enumerate([16, 32, 64], start=1):
        for bi in range(3):
            stride = 2 if (li > 1 and bi == 0) else 1
            pre = f"layer{li}.{bi}"
            h = relu(conv_bn(x, pre + ".conv1", pre + ".bn1", stride, pre + ".c1"), pre + ".r1")
            h = conv_bn(h, pre + ".conv2", pre + ".bn2", 1, pre + ".c2")
            if stride != 1 or in_planes != planes:
                pad = planes // 4
                nodes.append(helper.make_node(
                    "Slice", [x, const(pre + ".st", np.array([0, 0], np.int64)),
                              const(pre + ".en", np.array([2**31, 2**31], np.int64)),
                              const(pre + ".ax", np.array([2, 3], np.int64)),
                              const(pre + ".sp", np.array([2, 2], np.int64))], [pre + ".sl"]))
                nodes.append(helper.make_node(
                    "Pad", [pre + ".sl", const(pre + ".pd", np.array([0, pad, 0, 0, 0, pad, 0, 0], np.int64))],
                    [pre + ".sc"]))
                sc = pre + ".sc"
            else:
                sc = x
            nodes.append(helper.make_node("Add", [h, sc], [pre + ".add"]))
            x = relu(pre + ".add", pre + ".out")
            in_planes = planes
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"]))
    nodes.append(helper.make_node(
        "Gemm", ["flat", const("fc.w", p["linear.weight"]), const("fc.b", p["linear.bias"])], ["logits"],
        transB=1))
    graph = helper.make_graph(
        nodes, "resnet20",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model


def session(model, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--iters", type=int, default=20)
    args = ap.parse_args()
    p = read_safetensors(os.path.join(ROOT, "tests/data/resnet20_ref.safetensors"))
    io = read_safetensors(os.path.join(ROOT, "tests/data/resnet20_ref_io.safetensors"))
    model = build(p)
    got = session(model, 1).run(["logits"], {"input": io["input"]})[0]
    err = float(np.abs(got - io["logits"]).max())
    print(f"onnxruntime {ort.__version__}: max |logit - numpy float64| = {err:.2e}")
    assert err < 1e-3, "graph does not reproduce the reference logits"
    x = np.random.default_rng(0).random((args.batch, 3, 32, 32), dtype=np.float32)
    for threads in (1, 2):
        s = session(model, threads)
        for _ in range(3):
            s.run(["logits"], {"input": x})
        times = []
        for _ in range(args.iters):
            t = time.perf_counter()
            s.run(["logits"], {"input": x})
            times.append(time.perf_counter() - t)
        med = float(np.median(times))
        print(f"threads={threads} batch={args.batch}: median {med * 1e3:.1f} ms, "
              f"{args.batch / med:.0f} images/s (best {args.batch / min(times):.0f})")


if __name__ == "__main__":
    main()
