"""bbed's PGD against a jitted JAX PGD on one core: the same ResNet20 weights (bbed's random
initialisation, read by parameter name), the same 128 images labelled with the model's clean
predictions. Logits are checked first (JAX vs `bbed infer`). PGD L-inf, eps 8/255, alpha 2/255,
10 steps, no random start; the whole attack (10 gradient steps, projection) is one jitted
function, compiled before timing. Interleaved runs (bbed, JAX, ...), best of --reps each; prints
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

    @jax.jit
    def pgd(x0, y):
        def step(_, x):
            x = x + alpha * jnp.sign(grad(x, y))
            return jnp.clip(jnp.clip(x, x0 - eps, x0 + eps), 0.0, 1.0)
        return lax.fori_loop(0, 10, step, x0)

    u8 = common.images()
    x = jnp.asarray(u8.astype(np.float32) / 255.0)
    z = np.asarray(jax.jit(forward)(x))
    labels = z.argmax(1)
    data = common.write_cifar(args.peer_dir, u8, labels)
    common.check_logits(z, common.bbed_logits(args.bbed, args.peer_dir, data), "jax")
    y = jnp.asarray(labels.astype(np.int32))
    pgd(x, y).block_until_ready()  # compile

    tb, tj = float("inf"), float("inf")
    for _ in range(args.reps):
        secs, rep = common.run_bbed(args.bbed, args.peer_dir, data, BBED_PGD)
        tb = min(tb, secs)
        t = time.perf_counter()
        adv = pgd(x, y).block_until_ready()
        tj = min(tj, time.perf_counter() - t)
    acc = float((np.asarray(jax.jit(forward)(adv)).argmax(1) == labels).mean())
    print(f"PGD: accuracy after attack bbed {rep['accuracy_adv']:.3f} jax {acc:.3f}")
    n = common.N_IMAGES
    common.report([("PGD Linf 10 it, no rand", "img/s", n, tb, "jax", tj),
                   ("PGD (img-it/s)", "img-it/s", n * 10, tb, "jax", tj)])


if __name__ == "__main__":
    main()
