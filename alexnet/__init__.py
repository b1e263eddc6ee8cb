"""alexnet: AlexNet (Krizhevsky et al. 2012) and its seed reproductions, built on minidl.

    import alexnet
    model = alexnet.build("paper")                 # names: alexnet.names()
    rows, totals = alexnet.summary("paper")        # per-layer shapes, parameters, MACs
    alexnet.recipe("paper")                        # the training recipe, as a dict

Command line: ``python -m alexnet summary paper`` (see ``python -m alexnet --help``).
"""
from .models import AlexNet, build, names, recipe, tf_lrn_to_torch
from .summary import format_summary, summary

__all__ = ["AlexNet", "build", "format_summary", "names", "recipe", "summary", "tf_lrn_to_torch"]
