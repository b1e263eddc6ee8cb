"""The correctness parts of benchmarks/gpu.sh: the GPU against the CPU, one part per call.

    python benchmarks/gpu_checks.py PART --json RESULTS [--dry-run]

PART is one of
  dropout   the dropout masks of the GPU equal the CPU's bit for bit (F.dropout and the bare kernel)
  paper     `paper`'s forward, loss and every gradient on the GPU against the CPU, float64 and float32
  train     a few SGD steps of `mini` and `paper` on the GPU against the same steps on the CPU
  speed     training steps, ours on the GPU against ours on the CPU (when PyTorch has no CUDA)
  report    reads gpu.sh's outcome of every part (gpu-parts.tsv beside the JSON: name, exit code,
            seconds), prints the one-line verdict and writes the results into the JSON and
            docs/benchmarks.md's GPU section (--markdown)
Each check adds {"ok": bool, ...} under its name in the JSON file and exits 1 when it failed.
--dry-run (no GPU): the "GPU" side runs on the CPU and the models are small, so every line of
these checks runs in a few seconds (tests/test_gpu_script.py runs it in the suite).
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
from minidl.kernels import dropout as dropout_kernels
import alexnet
from alexnet import bench_report
from alexnet.bench import environment

TOLERANCES = {np.float64: dict(rtol=1e-9, atol=1e-12), np.float32: dict(rtol=2e-3, atol=1e-5)}


def _relative_error(ours, ref):
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    return float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-30))


def _close(ours, ref, dtype):
    tol = TOLERANCES[dtype]
    return bool(np.allclose(ours, ref, rtol=tol["rtol"], atol=tol["atol"] * max(1.0, float(np.abs(ref).max()))))


# ------------------------------------------------------------------------ parts
def check_dropout(gpu, dry):
    rows = []
    for shape, p in [((33, 17), 0.5), ((4, 96, 27, 27), 0.1), ((128, 4096), 0.5), ((7,), 0.9)]:
        x = md.ones(*shape)
        md.manual_seed(11)
        cpu = F.dropout(x, p).numpy()
        md.manual_seed(11)
        other = F.dropout(x.to(gpu), p).numpy()
        rows.append({"shape": list(shape), "p": p, "equal": bool(np.array_equal(cpu, other))})
    xp = md.backend.cupy_module() if gpu == "gpu" else np
    n = 1_000_003
    mask = md.backend.asnumpy(dropout_kernels.dropout_mask_xp(n, 0.3, 2**40 + 5, 2**33 + 1, xp=xp))
    rows.append({"kernel": "dropout_mask_xp", "n": n, "equal": bool(np.array_equal(
        mask, dropout_kernels.dropout_mask_numba(n, 0.3, 2**40 + 5, 2**33 + 1)))})
    return {"ok": all(r["equal"] for r in rows), "cases": rows}


def _model_pair(name, dtype, gpu, num_classes):
    """The same model twice (same weights, dtype), one on the CPU and one on ``gpu``."""
    md.manual_seed(0)
    models = [alexnet.build(name, num_classes=num_classes) for _ in range(2)]
    for m in models:
        for p in m.parameters():
            p.data = p.data.astype(dtype)
    models[1].load_state_dict(models[0].state_dict())
    models[1].to(gpu)
    return models


def check_paper(gpu, dry):
    name, batch = ("mini", 4) if dry else ("paper", 2)
    results = []
    for dtype in (np.float64, np.float32):
        cpu_model, gpu_model = _model_pair(name, dtype, gpu, 10 if dry else 1000)
        rng = np.random.default_rng(1)
        x = rng.standard_normal((batch,) + tuple(cpu_model.input_shape)).astype(dtype)
        y = rng.integers(0, 10, batch)
        outs = []
        for model, device in ((cpu_model, "cpu"), (gpu_model, gpu)):
            md.manual_seed(5)                      # the same dropout masks on both devices
            logits = model(md.tensor(x, device=device))
            loss = F.cross_entropy(logits, md.tensor(y, device=device))
            loss.backward()
            outs.append((logits.numpy(), loss.item(), [p.grad.numpy() for p in model.parameters()]))
        (l_cpu, loss_cpu, g_cpu), (l_gpu, loss_gpu, g_gpu) = outs
        grad_errors = [_relative_error(a, b) for a, b in zip(g_gpu, g_cpu)]
        ok = (_close(l_gpu, l_cpu, dtype) and _close(loss_gpu, loss_cpu, dtype)
              and all(_close(a, b, dtype) for a, b in zip(g_gpu, g_cpu)))
        results.append({"model": name, "dtype": np.dtype(dtype).name, "ok": ok,
                        "logits_rel_error": _relative_error(l_gpu, l_cpu), "loss_cpu": loss_cpu, "loss_gpu": loss_gpu,
                        "worst_grad_rel_error": max(grad_errors), "tolerance": TOLERANCES[dtype]})
    return {"ok": all(r["ok"] for r in results), "cases": results}


def check_train(gpu, dry):
    results, steps = [], 2 if dry else 3
    for name, batch in ([("mini", 4)] if dry else [("mini", 32), ("paper", 8)]):
        losses = {}
        models = _model_pair(name, np.float32, gpu, 10)
        rng = np.random.default_rng(2)
        x = rng.standard_normal((batch,) + tuple(models[0].input_shape)).astype(np.float32)
        y = rng.integers(0, 10, batch)
        for model, device, side in zip(models, ("cpu", gpu), ("cpu", "gpu")):
            opt = md.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
            md.manual_seed(7)
            losses[side] = run = []
            for _ in range(steps):
                opt.zero_grad()
                loss = F.cross_entropy(model(md.tensor(x, device=device)), md.tensor(y, device=device))
                loss.backward()
                opt.step()
                run.append(loss.item())
        ok = bool(np.all(np.isfinite(losses["gpu"])) and np.allclose(losses["gpu"], losses["cpu"], rtol=1e-3))
        results.append({"model": name, "batch": batch, "ok": ok, **{f"losses_{k}": v for k, v in losses.items()}})
    return {"ok": all(r["ok"] for r in results), "cases": results}


def check_speed(gpu, dry):
    """Images per second of a training step, ours on ``gpu`` against ours on the CPU."""
    rows, repeats = [], 1 if dry else 3
    for name, batch in ([("mini", 8)] if dry else [("mini", 128), ("paper", 32)]):
        row = {"model": name, "batch": batch}
        for device, side in (("cpu", "cpu"), (gpu, "gpu")):
            model = alexnet.build(name, num_classes=10).to(device)
            opt = md.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            x = md.tensor(np.random.default_rng(0).standard_normal((batch,) + tuple(model.input_shape))
                          .astype(np.float32), device=device)
            y = md.tensor(np.arange(batch) % 10, device=device)
            times = []
            first = next(iter(model.parameters()))
            for i in range(repeats + 1):              # the first step compiles (GPU) or warms up: not timed
                start = time.perf_counter()
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
                first.numpy()                         # a copy to the host waits for the GPU
                if i:
                    times.append(time.perf_counter() - start)
            row[f"{side}_images_per_s"] = batch / float(np.median(times))
        row["speedup"] = row["gpu_images_per_s"] / row["cpu_images_per_s"]
        rows.append(row)
    return {"ok": True, "baseline": "minidl on the CPU (PyTorch has no CUDA here)", "rows": rows}


# ----------------------------------------------------------------------- report
def _parts(tsv):
    """{name: {"ok", "exit_code", "seconds", "detail"}} from gpu.sh's lines "name<TAB>code<TAB>seconds"."""
    parts = {}
    with open(tsv) as f:
        for line in f:
            name, code, seconds = line.split()
            code = int(code)
            parts[name] = {"ok": code == 0, "exit_code": code, "seconds": int(seconds),
                           "detail": {0: "", 124: "timed out", 137: "killed (time or memory)"}.get(code, f"exit {code}")}
    return parts


def _summary_markdown(results, bench_md):
    env = results.get("environment", {})
    lines = [f"Run by `benchmarks/gpu.sh` on {env.get('gpu', '?')} (CuPy {env.get('cupy', '?')}, "
             f"CUDA runtime {env.get('cuda', '?')}).", "",
             "| check | result | detail |", "|---|---|---|"]
    for part, value in results.get("parts", {}).items():
        detail = value.get("detail", "")
        lines.append(f"| {part} | {'pass' if value.get('ok') else 'FAIL'} | {detail} |")
    for case in results.get("paper", {}).get("cases", []):
        lines.append(f"| {case['model']} {case['dtype']} GPU vs CPU | {'pass' if case['ok'] else 'FAIL'} | "
                     f"logits {case['logits_rel_error']:.1e}, worst gradient {case['worst_grad_rel_error']:.1e} "
                     "(relative) |")
    speed = results.get("speed", {}).get("rows", [])
    if speed:
        lines += ["", "Training steps, ours on the GPU against ours on the CPU (PyTorch had no CUDA):", "",
                  "| model | batch | GPU img/s | CPU img/s | speed-up |", "|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['batch']} | {r['gpu_images_per_s']:.1f} | {r['cpu_images_per_s']:.1f} | "
                  f"{r['speedup']:.1f}x |" for r in speed]
    if bench_md:
        lines += ["", bench_md]
    return "\n".join(lines) + "\n"


def report(results, markdown, bench_json, dry):
    parts = results.get("parts", {})
    failed = [p for p, v in parts.items() if not v.get("ok")]
    bench_md = ""
    if bench_json and os.path.exists(bench_json):
        with open(bench_json) as f:
            bench_md = bench_report.markdown(json.load(f))
    if markdown:
        bench_report.update_markdown(markdown, "gpu", _summary_markdown(results, bench_md))
    verdict = "PASS" if parts and not failed else "FAIL"
    print(f"gpu.sh{' --dry-run' if dry else ''}: {verdict}: {len(parts) - len(failed)}/{len(parts)} parts passed"
          + (f"; failed: {', '.join(failed)}" if failed else "") + f" (details: {results.get('path', '?')})")
    return {"ok": verdict == "PASS", "verdict": verdict}


PARTS = {"dropout": check_dropout, "paper": check_paper, "train": check_train, "speed": check_speed}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("part", choices=list(PARTS) + ["report"])
    ap.add_argument("--json", required=True, help="the results file (read, updated, written back)")
    ap.add_argument("--dry-run", action="store_true", help="no GPU: the GPU side runs on the CPU, small models")
    ap.add_argument("--markdown", help="report: the Markdown file whose GPU section gets the results")
    ap.add_argument("--bench-json", help="report: the JSON of `python -m alexnet bench --devices gpu`")
    args = ap.parse_args(argv)
    results = {}
    if os.path.exists(args.json):
        with open(args.json) as f:
            results = json.load(f)
    results["path"] = args.json
    gpu = "cpu" if args.dry_run else "gpu"
    if args.part == "report":
        results["parts"] = _parts(os.path.join(os.path.dirname(args.json), "gpu-parts.tsv"))
        outcome = report(results, args.markdown, args.bench_json, args.dry_run)
    else:
        if not args.dry_run:
            md.backend.check_device("gpu")     # a clear error when there is none
            results["environment"] = environment()
        outcome = PARTS[args.part](gpu, args.dry_run)
        results[args.part] = outcome
    with open(args.json + ".tmp", "w") as f:
        json.dump(results, f, indent=1, default=float)
    os.replace(args.json + ".tmp", args.json)
    if args.part != "report":
        print(json.dumps({args.part: outcome}, default=float)[:2000])
    return 0 if outcome["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
