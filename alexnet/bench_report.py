"""Turn benchmark results (alexnet/bench.py's JSON) into Markdown tables and a PNG bar chart."""
from __future__ import annotations

import os
import statistics

from .bench import STEP_RUNS, TARGETS


def _ms(seconds):
    return f"{seconds * 1e3:.2f}"


def kernel_table(rows):
    lines = ["| kernel | backend | device | forward ms | backward ms | torch fwd ms | torch bwd ms | "
             "speed-up vs torch | GFLOP/s | of sgemm |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        flops = f"{r['gflops']:.1f}" if "gflops" in r else ""
        frac = f"{r['fraction_of_sgemm']:.0%}" if "fraction_of_sgemm" in r else ""
        lines.append(f"| {r['kernel']} | {r['backend']} | {r['device']} | {_ms(r['forward_s'])} | "
                     f"{_ms(r['backward_s'])} | {_ms(r['torch_forward_s'])} | {_ms(r['torch_backward_s'])} | "
                     f"{r['speedup_fwd_bwd']:.2f}x | {flops} | {frac} |")
    return "\n".join(lines)


def step_table(rows):
    lines = ["| model | batch | device | ours img/s | torch img/s | ratio |", "|---|---:|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['batch']} | {r['device']} | {r['images_per_s']:.1f} | "
                     f"{r['torch_images_per_s']:.1f} | {r['ratio']:.2f}x |")
    return "\n".join(lines)


def memory_table(rows):
    lines = ["| model | batch | ours peak MiB | torch peak MiB | ours / torch |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['batch']} | {r['ours']['peak_bytes'] / 2**20:.0f} | "
                     f"{r['torch']['peak_bytes'] / 2**20:.0f} | {r['ratio']:.2f} |")
    return "\n".join(lines)


def targets_table(results):
    """Each target beside the measured figure (worst case over the rows it covers)."""
    fast = [r for r in results["kernels"] if r["backend"] in ("fast", "cupy") and r["device"] == "cpu"]
    measured = {}
    for family in ("lrn", "maxpool", "conv"):
        rows = [r["speedup_fwd_bwd"] for r in fast if r["family"] == family]
        if rows:
            measured[family] = (min(rows), f"min {min(rows):.2f}x over {len(rows)} shapes")
    for model, batches in STEP_RUNS.items():
        rows = [r for r in results["steps"] if r["model"] == model and r["device"] == "cpu"]
        target = [r for r in rows if r["batch"] == batches[0]]
        if target:
            measured[f"step:{model}"] = (target[0]["ratio"],
                                         ", ".join(f"b{r['batch']}: {r['ratio']:.2f}x" for r in rows))
    for r in results["memory"]:
        if r["model"] == "paper" and r["batch"] == 128:
            measured["memory:paper"] = (r["ratio"], f"{r['ratio']:.2f}")
    if results.get("cold_start"):
        c = results["cold_start"]
        measured["cold"] = (c["warm_cache_s"], f"{c['warm_cache_s']:.2f} s (empty cache: {c['cold_cache_s']:.2f} s)")
    lines = ["| target | goal | measured | met |", "|---|---|---|---|"]
    for key, (what, goal) in TARGETS.items():
        if key not in measured:
            lines.append(f"| {key} | {what}: {goal:.2f} | not measured | |")
            continue
        value, text = measured[key]
        lower_is_better = key.startswith("memory") or key == "cold"
        met = value <= goal if lower_is_better else value >= goal
        lines.append(f"| {key} | {what}: {'<=' if lower_is_better else '>='} {goal:.2f} | {text} | "
                     f"{'yes' if met else 'NO'} |")
    return "\n".join(lines)


def markdown(results):
    env = results["environment"]
    parts = [f"Measured {env['time']} on {env['cores']} cores ({env['cpu']}), Python {env['python']}, "
             f"NumPy {env['numpy']}, Numba {env['numba']}, PyTorch {env['torch']} ({env['torch_threads']} threads)"
             + (f", GPU {env['gpu']}, CuPy {env['cupy']}, CUDA runtime {env['cuda']}" if "gpu" in env else "")
             + f"; median of {results['repeats']} interleaved repeats after a warm-up.",
             "", "### Targets", "", targets_table(results)]
    if results["kernels"]:
        parts += ["", "### Kernels (batch 32, the paper's layer shapes)", "", kernel_table(results["kernels"])]
    if results["steps"]:
        parts += ["", "### Training steps (forward, loss, backward, SGD update)", "", step_table(results["steps"])]
    if results["memory"]:
        parts += ["", "### Peak memory of training steps (resident set, fresh process each)", "",
                  memory_table(results["memory"])]
    return "\n".join(parts) + "\n"


def bar_chart(results, path):
    """Speed-up of each fast kernel and step ratio against PyTorch (1.0 = parity)."""
    import matplotlib  # noqa: PLC0415 - optional dependency, loaded only when used
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - optional dependency, loaded only when used
    rows = [(f"{r['kernel']} ({r['device']})", r["speedup_fwd_bwd"]) for r in results["kernels"]
            if r["backend"] in ("fast", "cupy")]
    rows += [(f"step {r['model']} b{r['batch']} ({r['device']})", r["ratio"]) for r in results["steps"]]
    if not rows:
        return None
    labels, values = zip(*rows)
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(rows) + 1.2))
    colors = ["tab:green" if v >= 1 else "tab:red" for v in values]
    ax.barh(range(len(rows)), values, color=colors)
    ax.axvline(1.0, color="black", lw=1)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("PyTorch time / minidl time (log scale; > 1 means minidl is faster)")
    ax.set_title(f"minidl vs PyTorch, median of {results['repeats']} (geo-mean "
                 f"{statistics.geometric_mean(values):.2f}x)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def update_markdown(path, section, text):
    """Replace the text between ``<!-- results:SECTION start -->`` and ``<!-- results:SECTION end -->``
    in ``path`` (appending the block if absent), keeping the hand-written rest of the file."""
    start, end = f"<!-- results:{section} start -->", f"<!-- results:{section} end -->"
    old = open(path).read() if os.path.exists(path) else ""
    block = f"{start}\n{text}{end}"
    if start in old and end in old:
        new = old[:old.index(start)] + block + old[old.index(end) + len(end):]
    else:
        new = old + ("\n" if old else "") + block + "\n"
    with open(path + ".tmp", "w") as f:
        f.write(new)
    os.replace(path + ".tmp", path)
