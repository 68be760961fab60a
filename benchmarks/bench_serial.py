"""Serial (convolutional) networks: empirical-NTK speed and memory, convolution kernels.

1. Empirical NTK of a 3-layer CNN (16 channels, 3x3 kernels, 8x8x1 inputs, GAP, 10 heads
   summed) on n = 256 inputs, both contraction orders, against, in the same run:
   a. torch.func's jacrev-based NTK of the same network (float64), when torch is installed;
   b. the explicit-Jacobian reference (``SerialNetwork.jacobian``, one backward pass per example
      and head, then ``J J^T``), when torch is not (the issue's target: >= 20x);
   c. the GEMM time of the network's patch Grams (``(nP x nP)``, inner size ``K C_in``, one per
      conv layer) and of the bare Jacobian contraction ``J J^T`` (``(n, k P_total)``), the least
      any jacrev-based NTK must do after forming ``J``.
2. Peak memory beyond the n x n result at 16 / 64 / 256 channels (tracemalloc), with the
   stored forward pass and head signals it includes.
3. Convolution forward: im2col + one GEMM against per-offset shifted products of the 4-D arrays
   and against one GEMM of the im2col size (the measurement behind the choice of im2col).

Run: ``ntkdyn bench --only serial`` (``--quick`` for smaller sizes) or
``python benchmarks/bench_serial.py``.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_time, peak_memory  # noqa: E402

from ntkdyn.layers import Activation, Conv, Dense, GlobalAvgPool  # noqa: E402
from ntkdyn.numerics.serial import SerialNetwork, patches  # noqa: E402
from ntkdyn.numerics.serial_ntk import serial_ntk  # noqa: E402


def cnn(channels, heads=10, side=8):
    return SerialNetwork([Conv(channels, 3), Activation("relu"), Conv(channels, 3),
                          Activation("relu"), Conv(channels, 3), Activation("relu"),
                          GlobalAvgPool(), Dense(heads)], (side, side, 1))


def explicit_jacobian_ntk(net, params, X):
    J = net.jacobian(params, X)
    flat = J.reshape(J.shape[0], -1)
    return flat @ flat.T


def torch_ntk(net, params, X):
    """torch.func jacrev NTK of the same CNN (NTK parameterization), heads summed; or None."""
    try:
        import torch
        from torch.func import jacrev, vmap
    except ImportError:
        return None
    torch.set_default_dtype(torch.float64)
    nodes = net.parameterised
    weights = [torch.tensor(np.asarray(W)) for W in params]
    convs = [(torch.tensor(np.transpose(W, (3, 2, 0, 1)).copy()), node.scales[0])
             for W, node in zip(params[:-1], nodes[:-1])]
    conv_w = tuple(w for w, _ in convs)
    scales = [c for _, c in convs]
    c_out = nodes[-1].scales[0]

    def f(ws, x):  # one example, channels first: (1, H, W)
        h = x[None]
        for w, c in zip(ws[:-1], scales):
            h = torch.relu(c * torch.nn.functional.conv2d(h, w, padding="same"))
        return c_out * (h.mean(dim=(2, 3)) @ ws[-1].T)[0]

    ws = conv_w + (weights[-1],)
    x = torch.tensor(np.transpose(X, (0, 3, 1, 2)).copy())

    def run():
        jac = vmap(jacrev(f), (None, 0))(ws, x)  # tuple of (n, k, *shape)
        flat = torch.cat([j.reshape(j.shape[0], j.shape[1], -1) for j in jac], dim=-1)
        return torch.einsum("nkp,mkp->nm", flat, flat).numpy()

    return run


def patch_gram_time(net, X, repeats):
    """GEMM time of the patch Grams ``P P^T`` (``(nP x nP)``, inner ``K C_in``), per conv layer."""
    rng = np.random.default_rng(0)
    total = 0.0
    for node in net.parameterised:
        if node.kind != "Conv":
            continue
        A = rng.standard_normal((X.shape[0] * node.positions, node.fan_in))
        total += best_time(lambda: A @ A.T, repeats)
    return total


def contraction_time(net, n, repeats):
    """GEMM time of ``J J^T`` for ``J`` of shape ``(n, k P_total)`` (heads summed)."""
    J = np.random.default_rng(1).standard_normal((n, net.output_dim * net.num_params))
    return best_time(lambda: J @ J.T, repeats)


def speed(n, repeats):
    net = cnn(16)
    params = net.init(0)
    X = np.random.default_rng(2).standard_normal((n, 8, 8, 1))
    out = {}
    for method in ("auto", "gradients", "positions"):
        r = 1 if method == "positions" else repeats
        out[method] = best_time(lambda: serial_ntk(net, params, X, method=method), r)
    out["patch_grams"] = patch_gram_time(net, X, repeats)
    out["contraction"] = contraction_time(net, n, repeats)
    run = torch_ntk(net, params, X)
    if run is not None:
        K = run()
        err = np.abs(K - serial_ntk(net, params, X)).max() / np.abs(K).max()
        out["torch"] = best_time(run, repeats)
        out["torch_error"] = err
    # the explicit-Jacobian reference: n * k backward passes, then J J^T
    K_ref = None

    def reference():
        nonlocal K_ref
        K_ref = explicit_jacobian_ntk(net, params, X)

    out["explicit"] = best_time(reference, 1)
    out["explicit_error"] = (np.abs(serial_ntk(net, params, X) - K_ref).max()
                             / np.abs(K_ref).max())
    return out


def memory(n, channel_counts):
    rows = []
    X = np.random.default_rng(3).standard_normal((n, 8, 8, 1))
    for C in channel_counts:
        net = cnn(C)
        params = net.init(4)
        (_, peak) = peak_memory(lambda: serial_ntk(net, params, X))
        forward = 8 * n * sum(math.prod(node.in_shape) + math.prod(node.out_shape)
                              for node in net.nodes)
        per_head = 8 * n * sum(math.prod(node.out_shape) for node in net.parameterised)
        heads = max(1, min(net.output_dim, 2 * 2**25 // per_head))  # serial_ntk's head blocks
        rows.append((C, peak - 8 * n * n, forward, heads * per_head, heads))
    return rows


def conv_forward(n, side, channels, repeats):
    rng = np.random.default_rng(5)
    net = SerialNetwork([Conv(channels, 3), GlobalAvgPool(), Dense(1)],
                        (side, side, channels))
    node = net.nodes[0]
    W = net.init(0)[0]
    a = rng.standard_normal((n, side, side, channels))

    def im2col():
        return patches(node, a).reshape(-1, node.fan_in) @ W.reshape(node.fan_in, -1)

    def shifted():
        ap = np.pad(a, ((0, 0), (1, 1), (1, 1), (0, 0)))
        out = np.zeros((n, side, side, channels))
        for i in range(3):
            for j in range(3):
                out += ap[:, i:i + side, j:j + side, :] @ W[i, j]
        return out

    A = rng.standard_normal((n * side * side, node.fan_in))
    Wm = W.reshape(node.fan_in, -1)
    return (best_time(im2col, repeats), best_time(shifted, 1 if channels >= 256 else repeats),
            best_time(lambda: A @ Wm, repeats))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None,
                        help="limit BLAS threads (threadpoolctl) for every measurement")
    args = parser.parse_args(argv)
    if args.threads is not None:
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads)
        print(f"(BLAS limited to {args.threads} thread(s))")
    q = args.quick
    n = 64 if q else 256
    repeats = 2 if q else 3
    res = speed(n, repeats)
    print(f"1. empirical NTK, 3-layer CNN (16 channels, 3x3, 8x8x1, GAP, 10 heads summed), n={n}")
    for method in ("auto", "gradients", "positions"):
        print(f"   serial_ntk method={method:9s}: {res[method]:.3f} s")
    t = res["auto"]
    if "torch" in res:
        print(f"   torch.func jacrev NTK: {res['torch']:.3f} s, speed-up {res['torch'] / t:.1f}x "
              f"(target >= 20), max relative difference {res['torch_error']:.1e}")
    else:
        print("   torch is not installed: the jacrev reference is not measured")
    print(f"   explicit-Jacobian reference (n k backward passes, J J^T): {res['explicit']:.3f} s, "
          f"speed-up {res['explicit'] / t:.1f}x (target >= 20 without torch); max relative "
          f"difference {res['explicit_error']:.1e}")
    print(f"   GEMMs of its patch Grams: {res['patch_grams']:.3f} s, ratio NTK / patch Grams "
          f"{t / res['patch_grams']:.2f}")
    print(f"   GEMM of the Jacobian contraction J J^T alone (n x k P_total): "
          f"{res['contraction']:.3f} s, ratio NTK / contraction {t / res['contraction']:.2f}")
    mem_n = 32 if q else 64
    print(f"2. peak memory beyond the n x n result, n={mem_n}")
    for C, extra, forward, signals, heads in memory(mem_n, (16, 64, 256)):
        print(f"   {C:4d} channels: {extra / 2**20:8.1f} MiB; it holds the forward record "
              f"{forward / 2**20:6.1f} MiB and the signals of {heads} heads at a time "
              f"{signals / 2**20:6.1f} MiB (both linear in the channels), the rest is the "
              f"Gram stage's blocks (bounded by block_bytes = 32 MiB)")
    print("3. convolution forward (3x3, same): im2col + GEMM vs per-offset shifted products")
    for n_c, side, C in ((256, 8, 16), (256, 8, 64), (64 if q else 256, 8, 256)):
        t_im, t_sh, t_gemm = conv_forward(n_c, side, C, repeats)
        print(f"   n={n_c}, {side}x{side}, {C:3d} channels: im2col {t_im:.4f} s, shifted "
              f"{t_sh:.4f} s, one GEMM of the im2col size {t_gemm:.4f} s; im2col / GEMM "
              f"{t_im / t_gemm:.2f}, shifted / im2col {t_sh / t_im:.2f}")


if __name__ == "__main__":
    main()
