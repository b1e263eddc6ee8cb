"""``python -m alexnet bench``: kernels, training steps, memory and cold start against PyTorch."""
from __future__ import annotations

import os

from .. import args as V

PARTS = ("kernels", "steps", "memory", "cold")


def register(subparsers):
    p = subparsers.add_parser("bench", help="benchmark every kernel and training steps against PyTorch",
                              description="Benchmark minidl against PyTorch in one run (needs torch: "
                                          "pip install -e '.[test]'). Writes benchmarks/results/*.json; a full "
                                          "run also writes docs/benchmarks.md's tables and a PNG chart.")
    p.add_argument("--quick", action="store_true", help="tiny shapes, few repeats (under a minute)")
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="what to measure")
    p.add_argument("--repeats", type=V.POSITIVE_INT, default=None, help="timed repeats per side (default 7, quick 3)")
    p.add_argument("--devices", nargs="+", choices=("cpu", "gpu"), default=None,
                   help="where to measure (default: the CPU, and the GPU when there is one)")
    p.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    p.add_argument("--markdown", default=None,
                   help="update the results section of this Markdown file (default: docs/benchmarks.md "
                        "for a full run, nothing for --quick)")
    p.set_defaults(func=run)


def run(args):
    from alexnet import bench, bench_report  # noqa: PLC0415 - imports torch

    out = args.out or bench.RESULTS_DIR
    results = bench.run(quick=args.quick, parts=tuple(args.parts), out_dir=out, repeats=args.repeats,
                        devices=args.devices)
    print(f"results: {results['path']}")
    markdown = args.markdown or (None if args.quick else os.path.join("docs", "benchmarks.md"))
    if markdown:
        section = "gpu" if results["environment"].get("gpu") else "cpu"
        bench_report.update_markdown(markdown, section, bench_report.markdown(results))
        chart = bench_report.bar_chart(results, os.path.splitext(results["path"])[0] + ".png")
        print(f"tables: {markdown}" + (f", chart: {chart}" if chart else ""))
    print(bench_report.targets_table(results))
    return 0
