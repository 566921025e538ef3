"""Runs an exported ONNX file with onnxruntime, or a QONNX file with the qonnx executor, and
writes the logits as JSON: the independent side of tests/engine/engine_export.rs.

usage: onnx_run.py MODEL.onnx INPUTS.json OUT.json onnx|qonnx

INPUTS.json holds {"shape": [N, C, H, W], "images": [flat float list]} of unit-scale images;
OUT.json gets {"logits": [[...], ...], "versions": {...}}. QONNX files have batch 1, so each
image runs on its own through qonnx.core.onnx_exec.execute_onnx (node by node, standard ops by
onnxruntime, BipolarQuant by qonnx's own Python implementation).
Exit code 3 when a needed Python package is missing (the test then skips, or fails under CI).
"""

import json
import sys

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
except ImportError as e:  # pragma: no cover - environment dependent
    print(f"missing python package: {e}", file=sys.stderr)
    sys.exit(3)


def main():
    model_path, inputs_path, out_path, mode = sys.argv[1:5]
    with open(inputs_path) as f:
        d = json.load(f)
    x = np.asarray(d["images"], dtype=np.float32).reshape(d["shape"])
    versions = {"onnx": onnx.__version__, "onnxruntime": ort.__version__}
    if mode == "onnx":
        onnx.checker.check_model(onnx.load(model_path), full_check=True)
        sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
        y = sess.run(["logits"], {"input": x})[0]
    elif mode == "qonnx":
        try:
            from qonnx.core.modelwrapper import ModelWrapper
            from qonnx.core.onnx_exec import execute_onnx
        except ImportError as e:  # pragma: no cover
            print(f"missing python package: {e}", file=sys.stderr)
            sys.exit(3)
        from importlib.metadata import version

        versions["qonnx"] = version("qonnx")
        model = ModelWrapper(model_path)
        ops = [n.op_type for n in model.graph.node]
        versions["bipolar_quant_nodes"] = ops.count("BipolarQuant")
        y = np.concatenate(
            [execute_onnx(model, {"input": x[i : i + 1]})["logits"] for i in range(x.shape[0])]
        )
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    with open(out_path, "w") as f:
        json.dump({"logits": y.astype(np.float64).tolist(), "versions": versions}, f)


if __name__ == "__main__":
    main()
