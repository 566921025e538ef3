"""bbed's FGSM and PGD against jitted JAX ones on one core: the same ResNet20 weights (bbed's
random initialisation, read by parameter name), the same 128 images labelled with the model's
clean predictions. Logits are checked first (JAX vs `bbed infer`).
  FGSM eps 8/255; PGD L-inf, eps 8/255, alpha 2/255, 10 steps, no random start.
FGSM and each PGD step (gradient, sign step, projection) are jitted functions, compiled before
timing. Both sides are timed to the same output, the adversarial images and the predictions on
them (bbed's run ends with them). Interleaved runs (bbed, JAX, ...), best of --reps each; prints
img/s, image-iterations/s and the ratio bbed/JAX (> 1: bbed faster). Not run in CI.

Usage:
  BBED_PEER_DIR=/tmp/peers cargo bench --bench attack_white   # writes the weights
  cargo build --release
  python3 benches/peers/attacks_jax.py --peer-dir /tmp/peers [--core 0] [--reps 3]
Needs: pip install jax numpy
"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attack_common as common  # noqa: E402

BBED_FGSM = ["fgsm", "--eps", "8", "--eps-scale", "pixel"]
BBED_PGD = ["pgd", "--eps", "8", "--eps-scale", "pixel", "--step", "2", "--step-scale", "pixel",
            "--iterations", "10", "--no-random-start", "--trace-every", "0"]


def main():
    args = common.arg_parser().parse_args()
    common.pin(args.core)
    # One XLA thread (must be set before jax is imported).
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_cpu_multi_thread_eigen=false"
                               + " intra_op_parallelism_threads=1")
    import jax
    import jax.numpy as jnp
    from jax import lax

    p = {k: jnp.asarray(v) for k, v in
         common.read_safetensors(os.path.join(args.peer_dir, "resnet20_init.safetensors")).items()}
    mean = jnp.asarray(common.MEAN).reshape(1, 3, 1, 1)
    std = jnp.asarray(common.STD).reshape(1, 3, 1, 1)

    def conv(x, w, stride):
        return lax.conv_general_dilated(x, w, (stride, stride), ((1, 1), (1, 1)),
                                        dimension_numbers=("NCHW", "OIHW", "NCHW"))

    def bn(x, name):
        s = p[name + ".weight"] / jnp.sqrt(p[name + ".running_var"] + 1e-5)
        b = p[name + ".bias"] - p[name + ".running_mean"] * s
        return x * s.reshape(1, -1, 1, 1) + b.reshape(1, -1, 1, 1)

    def forward(x):
        x = (x - mean) / std
        x = jax.nn.relu(bn(conv(x, p["conv1.weight"], 1), "bn1"))
        cin = 16
        for li, planes in enumerate([16, 32, 64], start=1):
            for bi in range(3):
                stride = 2 if (li > 1 and bi == 0) else 1
                pre = f"layer{li}.{bi}"
                h = jax.nn.relu(bn(conv(x, p[pre + ".conv1.weight"], stride), pre + ".bn1"))
                h = bn(conv(h, p[pre + ".conv2.weight"], 1), pre + ".bn2")
                if stride != 1 or cin != planes:
                    pad = planes // 4
                    sc = jnp.pad(x[:, :, ::2, ::2], ((0, 0), (pad, pad), (0, 0), (0, 0)))
                else:
                    sc = x
                x = jax.nn.relu(h + sc)
                cin = planes
        x = x.mean(axis=(2, 3))
        return x @ p["linear.weight"].T + p["linear.bias"]

    def loss(x, y):
        z = forward(x)
        return -jnp.take_along_axis(jax.nn.log_softmax(z), y[:, None], 1).sum()

    grad = jax.grad(loss)
    eps, alpha = 8 / 255, 2 / 255

    # One jitted step (gradient, sign step, projection) called 10 times from Python. Not
    # `lax.fori_loop` over the steps: XLA's CPU backend runs the convolution gradients inside a
    # while loop about 20x slower (25 vs 560 img-it/s measured on this script's network, 64
    # images, one core), which made this peer unfairly slow; ten dispatches cost nothing here.
    @jax.jit
    def step(x0, y, x):
        x = x + alpha * jnp.sign(grad(x, y))
        return jnp.clip(jnp.clip(x, x0 - eps, x0 + eps), 0.0, 1.0)

    def pgd(x0, y):
        x = x0
        for _ in range(10):
            x = step(x0, y, x)
        return x

    @jax.jit
    def fgsm(x0, y):
        return jnp.clip(x0 + eps * jnp.sign(grad(x0, y)), 0.0, 1.0)

    u8 = common.images()
    x = jnp.asarray(u8.astype(np.float32) / 255.0)
    z = np.asarray(jax.jit(forward)(x))
    labels = z.argmax(1)
    data = common.write_cifar(args.peer_dir, u8, labels)
    common.check_logits(z, common.bbed_logits(args.bbed, args.peer_dir, data), "jax")
    y = jnp.asarray(labels.astype(np.int32))
    predict = jax.jit(lambda v: forward(v).argmax(1))

    rows = []
    n = common.N_IMAGES
    for name, attack, flags, its in [("FGSM", fgsm, BBED_FGSM, 1),
                                     ("PGD Linf 10 it, no rand", pgd, BBED_PGD, 10)]:
        predict(attack(x, y)).block_until_ready()  # compile
        tb, tj = float("inf"), float("inf")
        for _ in range(args.reps):
            secs, rep = common.run_bbed(args.bbed, args.peer_dir, data, flags)
            tb = min(tb, secs)
            # Timed to the same output as bbed's run: adversarial images and their predictions.
            t = time.perf_counter()
            pred = predict(attack(x, y)).block_until_ready()
            tj = min(tj, time.perf_counter() - t)
        acc = float((np.asarray(pred) == labels).mean())
        print(f"{name}: accuracy after attack bbed {rep['accuracy_adv']:.3f} jax {acc:.3f}",
              flush=True)
        rows.append((name, "img/s", n, tb, "jax", tj))
        if its > 1:
            rows.append((name + " (img-it/s)", "img-it/s", n * its, tb, "jax", tj))
    common.report(rows)


if __name__ == "__main__":
    main()
