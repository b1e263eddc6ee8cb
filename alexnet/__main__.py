"""The alexnet command line: ``python -m alexnet <command> ...`` (or the ``alexnet`` script).

Each subcommand lives in its own module under alexnet/commands with a
``register(subparsers)`` function that adds its parser and sets ``func`` (called
with the parsed arguments; its return value is the exit status). To add one,
write the module and list its name in COMMANDS.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ["summary", "train", "evaluate", "bench", "diagnose", "ablate"]


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alexnet", description="AlexNet variants built on minidl")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"alexnet.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"alexnet.commands.{name}":
                continue  # not written yet
            raise
        module.register(subparsers)
    return parser


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    status = args.func(args)
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
