"""The subcommands of ``python -m alexnet``: one module each, with register(subparsers)."""
