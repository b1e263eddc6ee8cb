"""``alexnet summary NAME [--input CxHxW]``: each layer's output shape, parameters and MACs."""
from __future__ import annotations

import argparse
import sys

from .. import args as V, models
from ..summary import format_summary, summary


def parse_shape(text: str) -> tuple:
    """"3x227x227" -> (3, 227, 227)."""
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"--input must look like CxHxW, e.g. 3x227x227; got {text!r}")
    return tuple(int(p) for p in parts)


def register(subparsers) -> None:
    p = subparsers.add_parser("summary", help="layer table: output shapes, parameters, MACs",
                              description=__doc__)
    p.add_argument("name", choices=models.names(), help="the variant")
    p.add_argument("--input", type=parse_shape, default=None, metavar="CxHxW",
                   help="input shape (default: the variant's own)")
    p.add_argument("--num-classes", type=V.POSITIVE_INT, default=None, help="outputs (default: the variant's own)")
    p.set_defaults(func=run)


def run(args) -> int:
    options = {} if args.num_classes is None else {"num_classes": args.num_classes}
    try:
        rows, totals = summary(args.name, args.input, **options)
    except ValueError as exc:
        print(f"alexnet summary: {exc}", file=sys.stderr)
        return 2
    title = f"{args.name}: {models.VARIANTS[args.name].source}"
    print(format_summary(rows, totals, title=title))
    return 0
