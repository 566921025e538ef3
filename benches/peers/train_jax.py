"""bbed against jitted JAX (CPU, one core): training float ResNet20 (SGD momentum 0.9, wd 1e-4)
and the attack gradient path (eval-mode logits + d(cross-entropy)/d(input)).

Same network and weights (tests/data/resnet20_ref.safetensors), same 128 seeded images and
labels. Checks first that eval logits, the training-mode loss and the input gradient agree with
bbed's; then times bbed (benches/peer_step.rs, taskset-pinned, one rayon thread) and the jitted
JAX step (this process pinned to the same core, XLA told to use one thread) in alternating rounds
and prints img/s and the ratio bbed / JAX (median over rounds).

Usage: python3 benches/peers/train_jax.py [--core 1] [--rounds 3] [--steps 5] [--what train,grad]
Needs: pip install jax numpy; cargo (builds the peer_step bench once). Not run in CI.
"""
import os
import sys

# One XLA CPU thread; must be set before jax is imported.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
import argparse  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

EPS = 1e-5
STAGES = [(f"layer{s}.{b}", planes, 2 if (s > 1 and b == 0) else 1)
          for s, planes in enumerate((16, 32, 64), start=1) for b in range(3)]


def conv(x, w, stride):
    return jax.lax.conv_general_dilated(x, w, (stride, stride), ((1, 1), (1, 1)),
                                        dimension_numbers=("NCHW", "OIHW", "NCHW"))


def bn(p, name, x, train, stats):
    g, b = p[name + ".weight"], p[name + ".bias"]
    if train:
        mean = x.mean(axis=(0, 2, 3))
        var = x.var(axis=(0, 2, 3))
        stats[name] = (mean, var, x.shape[0] * x.shape[2] * x.shape[3])
    else:
        mean, var = p[name + ".running_mean"], p[name + ".running_var"]
    s = g / jnp.sqrt(var + EPS)
    return x * s[None, :, None, None] + (b - mean * s)[None, :, None, None]


def forward(p, x, train):
    stats = {}
    x = (x - common.MEAN[None, :, None, None]) / common.STD[None, :, None, None]
    x = jax.nn.relu(bn(p, "bn1", conv(x, p["conv1.weight"], 1), train, stats))
    cin = 16
    for pre, planes, stride in STAGES:
        h = jax.nn.relu(bn(p, pre + ".bn1", conv(x, p[pre + ".conv1.weight"], stride), train, stats))
        h = bn(p, pre + ".bn2", conv(h, p[pre + ".conv2.weight"], 1), train, stats)
        if stride != 1 or cin != planes:
            pad = (planes - cin) // 2
            sc = jnp.pad(x[:, :, ::stride, ::stride], ((0, 0), (pad, pad), (0, 0), (0, 0)))
        else:
            sc = x
        x = jax.nn.relu(h + sc)
        cin = planes
    x = x.mean(axis=(2, 3))
    return x @ p["linear.weight"].T + p["linear.bias"], stats


def ce(z, y):
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), y[:, None], axis=1))


def is_buffer(k):
    return k.endswith("running_mean") or k.endswith("running_var")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--core", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--what", default="train,grad")
    args = ap.parse_args()
    common.pin(args.core)
    exe = common.peer_step_binary()
    x, y, path = common.batch(args.batch)
    w = {k: jnp.asarray(v) for k, v in common.weights().items()}
    print(f"jax {jax.__version__}, core {args.core}, batch {args.batch}, load {os.getloadavg()}")

    params = {k: v for k, v in w.items() if not is_buffer(k)}
    buffers = {k: v for k, v in w.items() if is_buffer(k)}

    def loss_fn(params, buffers, x, y, train):
        z, stats = forward({**params, **buffers}, x, train)
        return ce(z, y), stats

    # Agreement checks.
    z = np.asarray(jax.jit(lambda x: forward(w, x, False)[0])(x[:8]))
    ours = np.array(common.bbed(exe, args.core, "logits-float", "--data", path, "--batch", 8)["logits"])
    print(f"eval logits max |bbed - jax| = {np.abs(ours - z).max():.2e}")
    assert np.abs(ours - z).max() < 1e-3
    l = float(loss_fn(params, buffers, jnp.asarray(x), jnp.asarray(y), True)[0])
    out = common.bbed(exe, args.core, "loss-float", "--data", path, "--batch", args.batch)
    print(f"train loss bbed {out['loss']:.6f} jax {l:.6f}")
    assert abs(out["loss"] - l) < 1e-4 * max(1.0, abs(l))
    gx = jax.jit(jax.grad(lambda x, y: loss_fn(params, buffers, x, y, False)[0]))
    g = np.asarray(gx(jnp.asarray(x[:8]), jnp.asarray(y[:8]))).reshape(-1)
    ours = np.array(common.bbed(exe, args.core, "grad-values", "--data", path, "--batch", 8)["grad"])
    err = np.abs(ours - g).max() / np.abs(g).max()
    print(f"input gradient max rel |bbed - jax| = {err:.2e}")
    assert err < 1e-3

    xj, yj = jnp.asarray(x), jnp.asarray(y)
    n = args.batch * args.steps

    @jax.jit
    def sgd_step(params, mom, buffers, x, y, lr=0.1, mu=0.9, wd=1e-4):
        (l, stats), g = jax.value_and_grad(lambda p: loss_fn(p, buffers, x, y, True),
                                           has_aux=True)(params)
        new_buf = dict(buffers)
        # PyTorch's running-statistics update (unbiased batch variance), as bbed and torch do.
        for name, (mean, var, cnt) in stats.items():
            new_buf[name + ".running_mean"] = 0.9 * buffers[name + ".running_mean"] + 0.1 * mean
            new_buf[name + ".running_var"] = (0.9 * buffers[name + ".running_var"] +
                                              0.1 * var * cnt / (cnt - 1))
        mom = {k: mu * mom[k] + g[k] + wd * params[k] for k in params}
        params = {k: params[k] - lr * mom[k] for k in params}
        return params, mom, new_buf

    def train_peer():
        state = [params, {k: jnp.zeros_like(v) for k, v in params.items()}, buffers]

        def step():
            state[:] = sgd_step(*state, xj, yj)
            jax.block_until_ready(state[0])
        return n / common.timed(step, args.steps)

    def grad_peer():
        def step():
            jax.block_until_ready(gx(xj, yj))
        return n / common.timed(step, args.steps)

    def ours_mode(mode):
        return common.bbed(exe, args.core, mode, "--data", path, "--batch", args.batch,
                           "--steps", args.steps)["img_per_s"]

    what = args.what.split(",")
    if "train" in what:
        common.interleave("train float SGD", args.rounds, lambda: ours_mode("train-float"),
                          train_peer)
    if "grad" in what:
        common.interleave("input gradient (eval)", args.rounds, lambda: ours_mode("grad-float"),
                          grad_peer)


if __name__ == "__main__":
    main()
