"""Benchmarks against PyTorch, in one run: every kernel on every backend, whole training steps,
peak memory and cold start.  ``python -m alexnet bench`` runs it; see docs/benchmarks.md.

Timing rules (the machine is shared and noisy): the two sides are interleaved
(ours, torch, torch, ours, ...) after a warm-up, each figure is the median of the
repeats, and results are reported as ratios measured in the same run.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

import minidl as md
import minidl.functional as F
from minidl import backend, kernels
from minidl.backends import conv as conv_settings

import alexnet
from alexnet.twins import torch_twin

RESULTS_DIR = os.path.join("benchmarks", "results")

# The project's speed targets: ratio = torch time / our time (speed-up), or ours/torch for memory.
# A step target is checked at the batch it names (the first of STEP_RUNS[model]).
TARGETS = {
    "lrn": ("speed-up vs PyTorch, forward+backward", 8.0),
    "maxpool": ("speed-up vs PyTorch, forward+backward", 2.0),
    "conv": ("speed-up vs PyTorch, forward+backward", 1.0),
    "step:paper": ("images/s vs PyTorch, batch 32", 1.5),
    "step:torchvision": ("images/s vs PyTorch, batch 32", 1.0),
    "step:mini": ("images/s vs PyTorch, batch 64", 1.3),
    "memory:paper": ("peak memory / PyTorch's, batch 128", 1.0),
    "cold": ("seconds to the first finished mini step, Numba cache warm", 3.0),
}
STEP_RUNS = {"paper": (32, 128), "torchvision": (32, 128), "mini": (64, 128)}


# ------------------------------------------------------------------ timing
def _sync(device):
    if device == "gpu":
        backend.cupy_module().cuda.Stream.null.synchronize()


def interleaved(ours, theirs, repeats=5, warmup=1, sync_ours=None, sync_theirs=None, setup_ours=None,
                setup_theirs=None):
    """Median seconds of ``ours()`` and ``theirs()``, run in the order A B B A A B ... after warm-up.
    ``setup_ours`` / ``setup_theirs``, when given, run untimed before every call of their side."""
    def prepare(setup, sync):
        if setup:
            setup()
            if sync:
                sync()
    for _ in range(warmup):
        prepare(setup_ours, sync_ours)
        ours()
        prepare(setup_theirs, sync_theirs)
        theirs()
    times = {"ours": [], "torch": []}
    order = [("ours", ours, sync_ours, setup_ours), ("torch", theirs, sync_theirs, setup_theirs)]
    for r in range(repeats):
        for name, fn, sync, setup in (order if r % 2 == 0 else order[::-1]):
            prepare(setup, sync)
            start = time.perf_counter()
            fn()
            if sync:
                sync()
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["ours"]), statistics.median(times["torch"])


def median_time(fn, repeats=5, warmup=1, sync=None):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


# ------------------------------------------------------------- kernel cases
@dataclass
class Case:
    """One kernel at one shape: the minidl and torch functions of the same inputs."""
    name: str
    family: str
    shapes: list
    ours: callable
    theirs: callable
    flops: float = 0.0                     # forward FLOPs (convs and FC), 0 otherwise
    gemm: tuple | None = None              # (m, k, n, count): the forward GEMMs, for the sgemm reference
    extra: dict = field(default_factory=dict)


def _conv_case(name, n, c, hw, o, k, s, p, g):
    oh = (hw + 2 * p - k) // s + 1
    macs = n * o * oh * oh * (c // g) * k * k
    return Case(name, "conv", [(n, c, hw, hw), (o, c // g, k, k), (o,)],
                lambda x, w, b: F.conv2d(x, w, b, stride=s, padding=p, groups=g),
                lambda x, w, b: _torch().nn.functional.conv2d(x, w, b, stride=s, padding=p, groups=g),
                flops=2.0 * macs, gemm=(o // g, (c // g) * k * k, n * oh * oh, g),
                extra={"stride": s, "padding": p, "groups": g})


def _fc_case(name, n, i, o):
    return Case(name, "fc", [(n, i), (o, i), (o,)], F.linear, lambda x, w, b: _torch().nn.functional.linear(x, w, b),
                flops=2.0 * n * i * o, gemm=(n, i, o, 1))


def kernel_cases(quick=False):
    """AlexNet's (the paper's) layer shapes at batch 32; tiny shapes in quick mode."""
    t = _torch()
    n = 2 if quick else 32
    div = 8 if quick else 1      # channel divisor in quick mode
    hw1 = 67 if quick else 227
    cases = [
        _conv_case("conv1", n, 3, hw1, 96 // div, 11, 4, 0, 1),
        _conv_case("conv2", n, 96 // div, 27, 256 // div, 5, 1, 2, 2),
        _conv_case("conv3", n, 256 // div, 13, 384 // div, 3, 1, 1, 1),
        _conv_case("conv4", n, 384 // div, 13, 384 // div, 3, 1, 1, 2),
        _conv_case("conv5", n, 384 // div, 13, 256 // div, 3, 1, 1, 2),
    ]
    for label, shape in (("pool1", (n, 96 // div, 55, 55)), ("pool2", (n, 256 // div, 27, 27)),
                         ("pool5", (n, 256 // div, 13, 13))):
        cases.append(Case(f"maxpool 3/2 {label}", "maxpool", [shape], lambda x: F.max_pool2d(x, 3, 2),
                          lambda x: t.nn.functional.max_pool2d(x, 3, 2)))
    for label, shape in (("lrn1", (n, 96 // div, 55, 55)), ("lrn2", (n, 256 // div, 27, 27))):
        cases.append(Case(label, "lrn", [shape], lambda x: F.local_response_norm(x, 5, 5e-4, 0.75, 2.0),
                          lambda x: t.nn.functional.local_response_norm(x, 5, 5e-4, 0.75, 2.0)))
    fc = 4096 // div
    cases += [_fc_case("fc6", n, 9216 // div, fc), _fc_case("fc7", n, fc, fc), _fc_case("fc8", n, fc, 1000 // div)]
    for label in ("dropout6", "dropout7"):
        cases.append(Case(label, "dropout", [(n, fc)], lambda x: F.dropout(x, 0.5, True),
                          lambda x: t.nn.functional.dropout(x, 0.5, True)))
    return cases


def _torch():
    import torch  # noqa: PLC0415 - the benchmark's only use of torch; a test-only dependency
    return torch


def _sgemm_flops(m, k, n, count, repeats):
    """FLOP/s of NumPy's matmul (m, k) @ (k, n), repeated ``count`` times (one per group)."""
    rng = np.random.default_rng(0)
    a, b = rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)

    def run():
        for _ in range(count):
            np.matmul(a, b, out=out)
    return 2.0 * m * k * n * count / median_time(run, repeats)


def bench_kernel(case, implementation, device, repeats, warmup):
    """Forward and backward medians of one case in one implementation, with torch's, interleaved."""
    t = _torch()
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in case.shapes]
    tdev = "cuda" if device == "gpu" else "cpu"
    ours_in = [md.tensor(a, requires_grad=True, device=device) for a in arrays]
    theirs_in = [t.tensor(a, requires_grad=True, device=tdev) for a in arrays]
    sync_ours = (lambda: _sync(device)) if device == "gpu" else None
    sync_theirs = t.cuda.synchronize if device == "gpu" else None

    # the reference rows time im2col's reference (Winograd's and FFT's run tile by tile in Python)
    conv_algorithm = "im2col" if implementation == "reference" and case.family == "conv" else None
    with kernels.implementation(implementation), conv_settings.flags(algorithm=conv_algorithm):
        fwd = interleaved(lambda: case.ours(*ours_in), lambda: case.theirs(*theirs_in), repeats, warmup,
                          sync_ours, sync_theirs)
        # each backward gets a fresh forward (untimed), as in training: what a forward keeps for its
        # backward (im2col's columns, Winograd's V) is used once, so a retained graph would time a
        # second backward that recomputes it
        outs = {}

        def forward_ours():
            outs["ours"] = case.ours(*ours_in)

        def forward_theirs():
            outs["torch"] = case.theirs(*theirs_in)
        forward_theirs()
        g = rng.standard_normal(outs["torch"].shape).astype(np.float32)
        g_ours, g_theirs = md.tensor(g, device=device), t.tensor(g, device=tdev)
        bwd = interleaved(lambda: outs["ours"].backward(g_ours), lambda: outs["torch"].backward(g_theirs),
                          repeats, warmup, sync_ours, sync_theirs, setup_ours=forward_ours,
                          setup_theirs=forward_theirs)
    row = {"kernel": case.name, "family": case.family, "backend": implementation if device == "cpu" else "cupy",
           "device": device, "shapes": case.shapes,
           "forward_s": fwd[0], "torch_forward_s": fwd[1], "backward_s": bwd[0], "torch_backward_s": bwd[1]}
    row["speedup_fwd_bwd"] = (fwd[1] + bwd[1]) / (fwd[0] + bwd[0])
    if case.family == "conv":  # the algorithm minidl.backends.conv gave this layer
        row["algorithm"] = conv_algorithm or conv_settings.algorithm_for(
            case.shapes[0], case.shapes[1], case.extra["stride"], case.extra["padding"], case.extra["groups"],
            "float32", device)
    if case.flops:
        total = 3 * case.flops  # backward = two GEMMs of the forward's size (dx and dw)
        row["gflops"] = total / (fwd[0] + bwd[0]) / 1e9
        if device == "cpu":
            row["sgemm_gflops"] = _sgemm_flops(*case.gemm, repeats=repeats) / 1e9
            row["fraction_of_sgemm"] = row["gflops"] / row["sgemm_gflops"]
    return row


def bench_sgd(quick, device, repeats, warmup):
    """The fused SGD update (momentum 0.9, weight decay 5e-4) over AlexNet's parameter shapes."""
    t = _torch()
    model = alexnet.build("mini" if quick else "paper", num_classes=10 if quick else 1000)
    if device == "gpu":
        model.to("gpu")
    params = list(model.parameters())
    for p in params:
        p.grad = md.tensor(np.full(p.shape, 1e-3, dtype=np.float32), device=device)
    tparams = [t.zeros(p.shape, requires_grad=True, device="cuda" if device == "gpu" else "cpu") for p in params]
    for tp in tparams:
        tp.grad = t.full_like(tp, 1e-3)
    rows = []
    for rule in ("pytorch", "paper"):
        ours = md.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4, rule=rule)
        theirs = t.optim.SGD(tparams, lr=0.01, momentum=0.9, weight_decay=5e-4)
        for impl in ("reference", "fast") if device == "cpu" else ("fast",):
            with kernels.implementation(impl):
                o, th = interleaved(ours.step, theirs.step, repeats, warmup)
            rows.append({"kernel": f"sgd update ({rule} rule)", "family": "sgd",
                         "backend": impl if device == "cpu" else "cupy", "device": device,
                         "parameters": int(sum(p.numel() for p in params)),
                         "forward_s": o, "torch_forward_s": th, "backward_s": 0.0, "torch_backward_s": 0.0,
                         "speedup_fwd_bwd": th / o})
    return rows


# -------------------------------------------------------- training steps
def step_functions(name, batch, device, num_classes=None, sides=("ours", "torch")):
    """(ours_step, torch_step) for one training step (forward, loss, backward, SGD update) of a variant;
    a side left out of ``sides`` is None and never built (the memory benchmark measures one alone)."""
    t = _torch()
    num_classes = num_classes or (10 if name == "mini" else 1000)
    model = alexnet.build(name, num_classes=num_classes)
    input_shape = model.input_shape
    twin = torch_twin(model) if "torch" in sides else None
    if "ours" not in sides:
        model = None  # only its weights were needed, for the twin
    tdev = "cuda" if device == "gpu" else "cpu"
    if device == "gpu" and model is not None:
        model.to("gpu")
    if device == "gpu" and twin is not None:
        twin.to(tdev)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch,) + tuple(input_shape)).astype(np.float32)
    y = rng.integers(0, num_classes, batch)
    xo, yo = md.tensor(x, device=device), md.tensor(y, device=device)
    xt, yt = t.tensor(x, device=tdev), t.tensor(y, device=tdev)
    if model is not None:
        opt = md.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
        model.train()
    if twin is not None:
        topt = t.optim.SGD(twin.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
        twin.train()

    def ours():
        opt.zero_grad()
        F.cross_entropy(model(xo), yo).backward()
        opt.step()
        _sync(device)

    def theirs():
        topt.zero_grad()
        t.nn.functional.cross_entropy(twin(xt), yt).backward()
        topt.step()
        if device == "gpu":
            t.cuda.synchronize()
    return (ours if model is not None else None), (theirs if twin is not None else None)


def bench_steps(runs, device, repeats, warmup):
    """Images/s of a training step of each (model, batch) in ``runs``, ours and the PyTorch twin's."""
    rows = []
    for name, batch in runs:
        ours, theirs = step_functions(name, batch, device)
        o, th = interleaved(ours, theirs, repeats, warmup)
        rows.append({"model": name, "batch": batch, "device": device, "step_s": o, "torch_step_s": th,
                     "images_per_s": batch / o, "torch_images_per_s": batch / th, "ratio": th / o})
    return rows


_MEMORY_SCRIPT = r"""
import sys, json, os
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
def high_water():
    # VmHWM: this process's peak resident set since its exec.  (getrusage's ru_maxrss is not:
    # on Linux it starts from the parent's resident set at fork, which made every row read the
    # benchmark process's own size.)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
from alexnet.bench import step_functions
ours, theirs = step_functions(sys.argv[1], int(sys.argv[2]), "cpu", sides=(sys.argv[3],))
fn = ours if sys.argv[3] == "ours" else theirs
fn()  # warm-up
base = rss()
fn(); fn()
peak = high_water()
print(json.dumps({"peak_bytes": peak, "steady_bytes": base, "peak_above_steady": peak - base}))
"""


def bench_memory(name, batch):
    """Peak resident memory of training steps, each framework in its own fresh process."""
    result = {"model": name, "batch": batch}
    for side in ("ours", "torch"):
        out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, name, str(batch), side],
                             capture_output=True, text=True, check=True, env=_child_env())
        result[side] = json.loads(out.stdout.strip().splitlines()[-1])
    result["ratio"] = result["ours"]["peak_bytes"] / result["torch"]["peak_bytes"]
    return result


_COLD_SCRIPT = r"""
import time
start = time.perf_counter()
import numpy as np
import minidl as md, alexnet
import minidl.functional as F
model = alexnet.build("mini", num_classes=10)
opt = md.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x = md.tensor(np.random.default_rng(0).random((32,) + tuple(model.input_shape), dtype=np.float32))
F.cross_entropy(model(x), np.arange(32) % 10).backward()
opt.step()
print(time.perf_counter() - start)
"""


def bench_cold_start():
    """Seconds from interpreter start to the first finished `mini` step, with an empty and a warm
    Numba cache (a private NUMBA_CACHE_DIR, so the user's cache is untouched)."""
    with tempfile.TemporaryDirectory() as cache:
        env = _child_env(NUMBA_CACHE_DIR=cache)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", _COLD_SCRIPT], check=True, env=env, capture_output=True)
            times.append(time.perf_counter() - start)
    return {"cold_cache_s": times[0], "warm_cache_s": min(times[1:])}


def _child_env(**extra):
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd()] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


# ------------------------------------------------------------------ driver
def _cpu_name():
    """The CPU's model name and its widest vector extension (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = fields.get("flags", "").split()
    vector = next((v for v in ("avx512f", "avx2", "avx", "sse4_2") if v in flags), "")
    return " ".join(filter(None, [fields.get("model name", platform.machine()), vector]))


def environment():
    t = _torch()
    info = {"python": platform.python_version(), "numpy": np.__version__, "torch": t.__version__,
            "torch_threads": t.get_num_threads(), "cpu": _cpu_name(),
            "cores": os.cpu_count(), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
            "OPENBLAS_THREAD_TIMEOUT": os.environ.get("OPENBLAS_THREAD_TIMEOUT")}
    import numba  # noqa: PLC0415 - optional dependency, loaded only when used
    info["numba"] = numba.__version__
    if md.gpu_available():
        cp = backend.cupy_module()
        info["gpu"] = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
        info["cupy"] = cp.__version__
        info["cuda"] = cp.cuda.runtime.runtimeGetVersion()
    return info


def run(quick=False, parts=("kernels", "steps", "memory", "cold"), out_dir=RESULTS_DIR, log=print,
        repeats=None, devices=None):
    """Run the chosen parts and write JSON (+ Markdown and PNG unless quick); returns the results.
    ``devices``: where to measure (default: the CPU, and the GPU when there is one)."""
    repeats = repeats or (3 if quick else 7)
    warmup = 1
    devices = list(devices or ["cpu"] + (["gpu"] if md.gpu_available() else []))
    if "gpu" in devices:
        backend.check_device("gpu")   # says why when there is none
    results = {"quick": quick, "environment": environment(), "repeats": repeats, "kernels": [], "steps": [],
               "memory": [], "cold_start": None}
    if "kernels" in parts:
        for device in devices:
            impls = ("reference", "fast") if device == "cpu" else ("fast",)
            for case in kernel_cases(quick):
                for impl in impls:
                    row = bench_kernel(case, impl, device, repeats, warmup)
                    results["kernels"].append(row)
                    log(f"{row['kernel']:>22} {row['backend']:>9}: fwd {row['forward_s'] * 1e3:8.2f} ms "
                        f"bwd {row['backward_s'] * 1e3:8.2f} ms  torch {row['torch_forward_s'] * 1e3:8.2f} / "
                        f"{row['torch_backward_s'] * 1e3:8.2f} ms  speed-up {row['speedup_fwd_bwd']:.2f}x"
                        + (f"  [{row['algorithm']}]" if "algorithm" in row else ""))
            results["kernels"] += bench_sgd(quick, device, repeats, warmup)
    if "steps" in parts:
        runs = [("mini", 8)] if quick else [(name, batch) for name, batches in STEP_RUNS.items() for batch in batches]
        for device in devices:
            for row in bench_steps(runs, device, repeats, warmup):
                results["steps"].append(row)
                log(f"step {row['model']:>12} batch {row['batch']:>4} {device}: {row['images_per_s']:8.1f} img/s, "
                    f"torch {row['torch_images_per_s']:8.1f} img/s, ratio {row['ratio']:.2f}")
    if "memory" in parts:
        for name, batch in ([("mini", 8)] if quick else [("paper", 32), ("paper", 128), ("mini", 128)]):
            row = bench_memory(name, batch)
            results["memory"].append(row)
            log(f"memory {name} batch {batch}: ours {row['ours']['peak_bytes'] / 2**20:.0f} MiB, "
                f"torch {row['torch']['peak_bytes'] / 2**20:.0f} MiB, ratio {row['ratio']:.2f}")
    if "cold" in parts:
        results["cold_start"] = bench_cold_start()
        log(f"cold start: {results['cold_start']}")
    os.makedirs(out_dir, exist_ok=True)
    stem = ("quick" if quick else "full") + ("-gpu" if "gpu" in devices else "")
    path = os.path.join(out_dir, f"{stem}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(results, f, indent=1)
    os.replace(path + ".tmp", path)
    results["path"] = path
    return results
