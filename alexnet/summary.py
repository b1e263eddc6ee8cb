"""A layer-by-layer table of a model: output shape, parameters and multiply-accumulates (MACs).

    rows, totals = alexnet.summary("paper")                 # or a model, and an input (C, H, W)
    print(alexnet.format_summary(rows, totals))

Output shapes come from a forward pass of one all-zeros image under md.no_grad (in eval mode;
the model's mode is restored after); parameters are counted from each layer's own Parameters;
MACs are those of one image and count only the multiply-accumulates of the weight layers:
    conv:   H_out * W_out * weight.numel()   (each output pixel of each output channel takes
                                             C_in/groups * kh * kw products; weight.numel() =
                                             C_out * C_in/groups * kh * kw)
    linear: weight.numel()                   (in_features * out_features)
Pooling, normalisation and ReLU are counted as 0 MACs (their work is a few operations per
activation, small beside the convolutions).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import minidl as md

from . import models


@dataclass
class Row:
    name: str            # "features.0"
    type: str            # "Conv2d"
    output_shape: tuple  # without the batch dim
    params: int
    macs: int


def _layers(model):
    """(name, callable) in forward order: the model's own list, else its leaf modules in order."""
    if hasattr(model, "layers"):
        return model.layers()
    return [(name, m) for name, m in model.named_modules() if name and not m._modules]


def _macs(module, output_shape) -> int:
    weight = getattr(module, "weight", None)
    if weight is None or not hasattr(weight, "ndim"):
        return 0
    if weight.ndim == 4:   # conv: one weight.numel() worth of products per output pixel
        return int(np.prod(output_shape[2:])) * weight.numel()   # output_shape: (N, C, H, W)
    if weight.ndim == 2:   # linear
        return weight.numel()
    return 0


def summary(model_or_name, input_shape=None, **build_options):
    """Rows (one per layer, in forward order) and totals of a model or a variant's name.

    input_shape: (C, H, W) to run; by default the model's ``input_shape``. With a name, the
    variant is built for that input (fixed-size variants then get the fc6 width that fits it).
    Returns (rows, totals) with totals = {"params", "macs", "output_shape", "input_shape"}.
    """
    if isinstance(model_or_name, str):
        if input_shape is not None:
            build_options = dict(build_options, in_channels=int(input_shape[0]),
                                 input_size=(int(input_shape[1]), int(input_shape[2])))
        model = models.build(model_or_name, **build_options)
    else:
        model = model_or_name
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
        if input_shape is None:
            raise ValueError("summary: give input_shape (C, H, W) for a model without an input_shape attribute")
    input_shape = tuple(int(s) for s in input_shape)
    if hasattr(model, "check_input"):
        model.check_input(md.zeros(1, *input_shape))

    rows, was_training = [], model.training
    model.eval()
    try:
        with md.no_grad():
            x = md.zeros(1, *input_shape)
            for name, layer in _layers(model):
                x = layer(x)
                params = sum(p.numel() for p in layer.parameters()) if hasattr(layer, "parameters") else 0
                rows.append(Row(name, type(layer).__name__, tuple(x.shape[1:]), params, _macs(layer, x.shape)))
    finally:
        model.train(was_training)
    total_params = sum(p.numel() for p in model.parameters())
    counted = sum(r.params for r in rows)
    if counted != total_params:
        raise RuntimeError(f"summary: the layers walked hold {counted} parameters but the model has {total_params}")
    totals = dict(params=total_params, macs=sum(r.macs for r in rows), output_shape=rows[-1].output_shape,
                  input_shape=input_shape)
    return rows, totals


def format_summary(rows, totals, title: str | None = None) -> str:
    """The table as text, thousands separated."""
    shape = lambda s: "x".join(map(str, s))  # noqa: E731
    header = ("layer", "type", "output", "params", "MACs")
    body = [(r.name, r.type, shape(r.output_shape), f"{r.params:,}", f"{r.macs:,}") for r in rows]
    foot = ("total", "", shape(totals["output_shape"]), f"{totals['params']:,}", f"{totals['macs']:,}")
    widths = [max(len(line[i]) for line in [header, *body, foot]) for i in range(5)]

    def fmt(line):
        return "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))

    rule = "-" * len(fmt(header))
    lines = ([title] if title else []) + [f"input: {shape(totals['input_shape'])}", fmt(header), rule]
    return "\n".join(lines + [fmt(b) for b in body] + [rule, fmt(foot)])
