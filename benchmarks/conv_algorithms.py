"""Every convolution algorithm on every conv layer of AlexNet (paper, batch 32) and `mini`
(batch 64), forward + backward, against PyTorch, interleaved in one run.

    PYTHONPATH=. python benchmarks/conv_algorithms.py            # full shapes; run on a quiet machine
    PYTHONPATH=. python benchmarks/conv_algorithms.py --quick    # tiny shapes: checks that it runs
    PYTHONPATH=. python benchmarks/conv_algorithms.py --algorithms im2col winograd-2x2 --tag NAME   # a subset

For each layer and each applicable algorithm: the median of ``repeats`` fwd+bwd runs, ours and
torch's interleaved (ours, torch, torch, ours, ...), the ratio torch/ours, the effective GFLOP/s
(the direct convolution's 3 x 2 x MACs over our time, whatever the algorithm actually multiplies),
the estimated multiplies of minidl.backends.conv.multiplies, what "auto" picks, and NumPy's
sgemm rate at 2048 measured in the same run (the machine's ceiling for GEMM-bound work).
Writes benchmarks/results/conv_algorithms[-quick].json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

import minidl as md
import minidl.functional as F
from alexnet.bench import environment, interleaved, median_time
from minidl.backends import conv as settings

# name, batch, in channels, size, out channels, kernel, stride, padding, groups
LAYERS = [
    ("alexnet conv1", 32, 3, 227, 96, 11, 4, 0, 1),
    ("alexnet conv2", 32, 96, 27, 256, 5, 1, 2, 2),
    ("alexnet conv3", 32, 256, 13, 384, 3, 1, 1, 1),
    ("alexnet conv4", 32, 384, 13, 384, 3, 1, 1, 2),
    ("alexnet conv5", 32, 384, 13, 256, 3, 1, 1, 2),
    ("mini conv1", 64, 1, 28, 64, 5, 1, 2, 1),
    ("mini conv2", 64, 64, 13, 128, 5, 1, 2, 2),
    ("mini conv3", 64, 128, 6, 192, 3, 1, 1, 1),
    ("mini conv4", 64, 192, 6, 192, 3, 1, 1, 2),
    ("mini conv5", 64, 192, 6, 128, 3, 1, 1, 2),
]


def quick_layer(layer):
    """The same geometry with batch 2 and an eighth of the channels (at least the groups' count)."""
    name, n, c, hw, o, k, s, p, g = layer
    return (name, 2, max(g, c // 8), hw if hw < 100 else 67, max(g, o // 8), k, s, p, g)


def sgemm_gflops(size=2048, repeats=3):
    rng = np.random.default_rng(0)
    a, b = rng.random((size, size), dtype=np.float32), rng.random((size, size), dtype=np.float32)
    out = np.empty_like(a)
    return 2.0 * size ** 3 / median_time(lambda: np.matmul(a, b, out=out), repeats) / 1e9


def bench_layer(layer, algorithm, repeats):
    import torch  # noqa: PLC0415 - the benchmark's reference
    name, n, c, hw, o, k, s, p, g = layer
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
    w = (rng.standard_normal((o, c // g, k, k)) * 0.05).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    mx, mw, mb = (md.tensor(a, requires_grad=True) for a in (x, w, b))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    oh = (hw + 2 * p - k) // s + 1
    dy = rng.standard_normal((n, o, oh, oh)).astype(np.float32)
    mdy, tdy = md.tensor(dy), torch.tensor(dy)

    def ours():
        with settings.flags(algorithm=algorithm):
            F.conv2d(mx, mw, mb, s, p, g).backward(mdy)

    def theirs():
        torch.nn.functional.conv2d(tx, tw, tb, s, p, 1, g).backward(tdy)

    ours_s, torch_s = interleaved(ours, theirs, repeats=repeats, warmup=1)
    direct_flops = 3 * 2.0 * n * o * oh * oh * (c // g) * k * k
    return {"layer": name, "algorithm": algorithm, "x": [n, c, hw, hw], "w": [o, c // g, k, k], "stride": s,
            "padding": p, "groups": g, "ours_s": ours_s, "torch_s": torch_s, "speedup": torch_s / ours_s,
            "effective_gflops": direct_flops / ours_s / 1e9,
            "estimated_forward_multiplies": settings.multiplies(algorithm, (n, c, hw, hw), (o, c // g, k, k),
                                                                (s, s), (p, p), g),
            "auto_picks": settings.algorithm_for((n, c, hw, hw), (o, c // g, k, k), s, p, g, "float32", "cpu")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, one repeat: checks that it runs")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", default=os.path.join("benchmarks", "results"))
    parser.add_argument("--algorithms", nargs="+", choices=settings.ALGORITHMS, default=list(settings.ALGORITHMS),
                        help="only these algorithms (default: all)")
    parser.add_argument("--tag", default=None, help="write conv_algorithms-TAG.json (a subset run beside the full one)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 7)
    layers = [quick_layer(layer) for layer in LAYERS] if args.quick else LAYERS
    results = {"quick": args.quick, "repeats": repeats, "algorithms": args.algorithms, "environment": environment(),
               "sgemm_2048_gflops": sgemm_gflops(512 if args.quick else 2048, repeats), "rows": []}
    print(f"numpy sgemm: {results['sgemm_2048_gflops']:.1f} GFLOP/s")
    for layer in layers:
        for algorithm in args.algorithms:
            if settings.requirement(algorithm, (0, 0, layer[5], layer[5]), (layer[6], layer[6])) is not None:
                continue
            row = bench_layer(layer, algorithm, repeats)
            results["rows"].append(row)
            print(f"{row['layer']:>14} {algorithm:>13}: {row['ours_s'] * 1e3:8.2f} ms, torch {row['torch_s'] * 1e3:8.2f} ms,"
                  f" speed-up {row['speedup']:5.2f}, {row['effective_gflops']:6.1f} GFLOP/s"
                  f"{'  (auto)' if row['auto_picks'] == algorithm else ''}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    name = "conv_algorithms" + ("-quick" if args.quick else "") + (f"-{args.tag}" if args.tag else "")
    path = os.path.join(args.out, name + ".json")
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
