"""The paper's two-GPU model parallelism, as two MPI ranks (docs/distributed.md, "Model parallel").

Rank g holds one GPU's half of ``paper``: half of every layer's output units (conv1's 48 of 96
filters, group g of the grouped conv2/conv4/conv5, half of conv3's filters, half of fc6/fc7/fc8's
units). The ranks exchange activations (and, backward, their gradients) only where the paper's
GPUs talk: conv3's input (both halves of conv2's pooled output), the inputs of fc6, fc7 and fc8,
and the logits (each rank computes half of fc8's outputs; the gathered logits are the same on both
ranks, so both compute the same loss).

LRN is the paper's: each GPU normalises over its own kernel maps only, so a window never reaches
across the halves. ``twin(...)`` builds that network in one process (``paper`` with per-half
LRN): the same computation, for tests and for checkpoints a single process loads.

    dist.init_process_group(backend="mpi")                 # mpiexec -n 2
    full = split.twin(10, width=1/16, input_size=99)      # the same seed on both ranks: the same weights
    half = split.Half(full, dist.get_rank())               # this rank's parameters, copied from full
    loss = F.cross_entropy(half(x), y)                     # both ranks: the SAME batch
    loss.backward(); optimizer.step()                      # each rank steps its own half
    full.load_state_dict(split.gather_state_dict(half))    # every rank: the whole model's weights

``python -m alexnet train --model paper --split paper`` trains it through the Trainer: SplitWorld
tells it that both ranks compute the same loss (nothing to sum, no test shards) and gathers the
model and optimizer state into the twin's for checkpoints.
"""
from __future__ import annotations

import copy
import dataclasses

import numpy as np

import minidl as md
import minidl.distributed as dist
import minidl.functional as F
from minidl import nn
from minidl.nn.model_parallel import all_gather

from . import models

WORLD = 2   # the paper's two GPUs
NORMS = ("lrn", "none")   # not "bn": the halves would have to share a batch norm's statistics


class HalvesLRN(nn.Module):
    """LocalResponseNorm applied to each of ``groups`` channel blocks on its own (the paper's LRN on two GPUs)."""

    def __init__(self, lrn: nn.LocalResponseNorm, groups: int = WORLD):
        super().__init__()
        self.lrn, self.groups = lrn, groups

    def forward(self, x):
        c = x.shape[1]
        if c % self.groups:
            raise ValueError(f"HalvesLRN: {c} channels do not split into {self.groups} groups (input {tuple(x.shape)})")
        n = c // self.groups
        return md.cat([self.lrn(x[:, i * n:(i + 1) * n]) for i in range(self.groups)], dim=1)

    def extra_repr(self):
        return f"groups={self.groups}"


def _layers(model) -> list:
    """Names of the conv and linear layers in forward order (conv1..conv5, fc6, fc7, fc8)."""
    return [name for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def twin(num_classes: int | None = None, **options) -> models.AlexNet:
    """``paper`` with each LRN acting on each half of the channels alone: the split network in one process.

    Its state dict is ``alexnet.build("paper", ...)``'s (LRN has no parameters)."""
    if options.get("norm") not in (None, *NORMS):
        raise ValueError(f"alexnet.split: norm {options['norm']!r} is not supported; the split network has the "
                         "paper's LRN (norm 'lrn') or none (norm 'none')")
    built = models.build("paper", num_classes, **options)
    features = [HalvesLRN(m) if isinstance(m, nn.LocalResponseNorm) else m for m in built.features]
    model = models.AlexNet("paper", built.spec, nn.Sequential(*features), built.classifier,
                           input_shape=built.input_shape, min_size=built.min_size)
    for name in _layers(model):
        out = _module(model, name).weight.shape[0]
        if out % WORLD:
            raise ValueError(f"alexnet.split: layer {name} has {out} output units, which do not split into "
                             f"{WORLD} halves; choose a width (or num_classes) that makes them even")
    return model


def _module(model, name):
    m = model
    for part in name.split("."):
        m = m[int(part)] if part.isdigit() else getattr(m, part)
    return m


def _half_conv(conv: nn.Conv2d, rank: int, gathered_input: bool) -> nn.Conv2d:
    """This rank's output channels of ``conv`` as a groups=1 conv on this rank's inputs (or all, when gathered)."""
    out = conv.out_channels // WORLD
    cin = conv.in_channels if gathered_input else conv.in_channels // WORLD
    if conv.groups not in (1, WORLD) or (conv.groups == 1) != gathered_input:
        raise ValueError(f"alexnet.split: conv {conv} does not fit the paper's split")
    half = nn.Conv2d(cin, out, conv.kernel_size, stride=conv.stride, padding=conv.padding)
    return half


class Half(nn.Module):
    """Rank ``rank``'s half of the split network ``full`` (from ``twin``), its parameters copied from it.

    forward(x) takes the whole batch (the same on both ranks) and returns the whole logits on both
    ranks; it calls all_gather at conv3's input, fc6's, fc7's and fc8's inputs, and on the logits."""

    def __init__(self, full: models.AlexNet, rank: int):
        super().__init__()
        if not isinstance(full, models.AlexNet) or full.variant != "paper":
            raise ValueError("alexnet.split.Half: needs the paper model built by alexnet.split.twin(...)")
        if rank not in range(WORLD):
            raise ValueError(f"alexnet.split.Half: rank must be 0 or 1, got {rank!r}")
        self.rank = rank
        self.input_shape, self.variant, self.fixed_size, self.min_size = full.input_shape, full.variant, True, 1
        f = list(full.features)
        conv = [i for i, m in enumerate(f) if isinstance(m, nn.Conv2d)]   # conv1..conv5
        c3 = conv[2]
        local = [_half_conv(m, rank, False) if i == conv[1] else copy.deepcopy(m) for i, m in enumerate(f[:c3])]
        local[0] = _half_conv(f[0], rank, True)                              # conv1 sees the whole image
        local = [m.lrn if isinstance(m, HalvesLRN) else m for m in local]   # LRN over this rank's maps only
        self.lower = nn.Sequential(*local)                                   # conv1 .. pool after conv2
        self.upper = nn.Sequential(*[_half_conv(m, rank, i == c3) if isinstance(m, nn.Conv2d) else copy.deepcopy(m)
                                     for i, m in enumerate(f[c3:], start=c3)])   # conv3 .. pool after conv5
        blocks, current = [], []
        for m in full.classifier:                                            # fc6 [ReLU, Dropout], fc7 ..., fc8
            if isinstance(m, nn.Linear) and current:
                blocks.append(current)
                current = []
            current.append(nn.Linear(m.in_features, m.out_features // WORLD) if isinstance(m, nn.Linear)
                           else copy.deepcopy(m))
        blocks.append(current)
        self.fc = nn.ModuleList([nn.Sequential(*b) for b in blocks])
        like = next(full.parameters())
        for p in self.parameters():           # full's dtype (float64 in the tests) before its values come in
            p.data = p.data.astype(like.dtype)
        if like.device != "cpu":
            self.to(like.device)
        self.load_state_dict(split_state_dict(full.state_dict(), rank, self))

    check_input = models.AlexNet.check_input     # the same message for a wrong input shape

    def forward(self, x):
        self.check_input(x)
        x = self.lower(x)
        x = all_gather(x, dim=1, name="conv3 input")               # conv3 reads both halves of conv2's maps
        x = F.flatten(self.upper(x), 1)
        for i, block in enumerate(self.fc):
            x = all_gather(x, dim=1, name=f"fc{6 + i} input")       # every fc layer reads all the previous units
            x = block(x)
        return all_gather(x, dim=1, grad="slice", name="logits")    # the loss is computed alike on both ranks


# ------------------------------------------------------------------- state dicts: halves <-> whole
def _pairs(half: Half) -> list:
    """(name in the whole model, name in the half) of each conv/linear layer, conv1 .. fc8."""
    whole = [f"features.{i}" for i in _conv_indices(half)] + _fc_names(half)
    return list(zip(whole, _layers(half)))


def _conv_indices(half):
    n_lower = len(half.lower)
    lower = [i for i, m in enumerate(half.lower) if isinstance(m, nn.Conv2d)]
    upper = [n_lower + i for i, m in enumerate(half.upper) if isinstance(m, nn.Conv2d)]
    return lower + upper


def _fc_names(half):
    names, offset = [], 0
    for block in half.fc:
        names.append(f"classifier.{offset}")
        offset += len(block)
    return names


def _rows_of(value, rank: int) -> np.ndarray:
    """Rank ``rank``'s share of an array over the whole model: its block of the output (first) axis."""
    value = np.asarray(value)
    n = value.shape[0] // WORLD
    return value[rank * n:(rank + 1) * n].copy()


def _gather_rows(value) -> np.ndarray:
    """Collective: the whole model's array from every rank's block of the output (first) axis, rank 0's first."""
    mine = np.ascontiguousarray(np.asarray(value))
    whole = np.empty((WORLD * mine.shape[0], *mine.shape[1:]), dtype=mine.dtype)
    dist.all_gather_into_tensor(whole, mine)
    return whole


def split_state_dict(state: dict, rank: int, half: Half) -> dict:
    """Rank ``rank``'s share of a whole-model state dict (every weight and bias split along its output axis)."""
    return {mine: _rows_of(state[whole], rank) for whole, mine in _param_names(half)}


def merge_state_dicts(halves: list, half: Half) -> dict:
    """The whole model's state dict from both ranks' half state dicts (rank 0's first)."""
    if len(halves) != WORLD:
        raise ValueError(f"alexnet.split.merge_state_dicts: needs {WORLD} half state dicts, got {len(halves)}")
    return {whole: np.concatenate([np.asarray(h[mine]) for h in halves], axis=0) for whole, mine in _param_names(half)}


def gather_state_dict(half: Half) -> dict:
    """Collective (every rank calls it): the whole model's state dict, on every rank."""
    state = half.state_dict()
    return {whole: _gather_rows(state[mine]) for whole, mine in _param_names(half)}


def _param_names(half: Half) -> list:
    """(name in the whole model, name in the half) of every parameter, in parameters() order (conv1.weight first)."""
    names = [(f"{whole}.{kind}", f"{mine}.{kind}") for whole, mine in _pairs(half) for kind in ("weight", "bias")]
    if [mine for _, mine in names] != [name for name, _ in half.named_parameters()]:
        raise RuntimeError("alexnet.split: the half's parameters are not in the layers' order")   # a bug here, not input
    return names


def gather_optimizer_state(half: Half, state: dict) -> dict:
    """Collective: an optimizer state dict over ``half``'s parameters (this rank's) -> the same over the whole
    model's, on every rank. Each per-parameter array (a momentum buffer, Adam's moments) has its parameter's
    shape and is gathered along the output axis as the parameter is; scalars (Adam's step) are the same on
    every rank. The parameter indices are the same in the half and the whole model (conv1 .. fc8)."""
    return _map_parameter_arrays(state, _gather_rows)


def split_optimizer_state(state: dict, rank: int, half: Half) -> dict:
    """Rank ``rank``'s share of an optimizer state dict over the whole model (gather_optimizer_state's inverse)."""
    return _map_parameter_arrays(state, lambda value: _rows_of(value, rank))


def _map_parameter_arrays(state: dict, fn) -> dict:
    """The optimizer state dict with ``fn`` applied to each per-parameter array (scalars such as
    Adam's step kept); entries visited in the same order on every rank, as the collectives need."""
    out = {index: {key: fn(value) if hasattr(value, "shape") and np.ndim(value) > 0 else value
                   for key, value in entries.items()}
           for index, entries in state["state"].items()}
    return {"state": out, "param_groups": state["param_groups"]}


class SplitWorld(dist.World):
    """The process group as the Trainer sees it when each of the 2 ranks holds a Half (``alexnet train
    --split paper``). Both ranks train on the same batches and compute the same loss, so nothing is summed
    and the test set is not sharded; a checkpoint holds the whole model (the twin's state dict) and the
    whole optimizer state, gathered from both ranks, so it loads into one process as well."""

    shards_data = False

    def checkpoint_state(self, model, optimizer) -> tuple:
        return gather_state_dict(model), gather_optimizer_state(model, optimizer.state_dict())

    def checkpoint_shapes(self, model) -> dict:
        halves = dict(model.named_parameters())
        return {whole: (WORLD * halves[mine].shape[0], *halves[mine].shape[1:]) for whole, mine in _param_names(model)}

    def local_checkpoint(self, model, ckpt):
        optimizer = ckpt.optimizer_state
        return dataclasses.replace(
            ckpt, model_state=split_state_dict(ckpt.model_state, self.rank, model),
            optimizer_state=None if optimizer is None else split_optimizer_state(optimizer, self.rank, model))


# ------------------------------------------------------------------- traffic
def exchange_sizes(num_classes: int = 1000, **options) -> dict:
    """{exchange: values per image that one rank sends forward} for ``paper`` built with ``options``
    (float32: 4 bytes each). Backward sends as many gradient values, except for the logits (none)."""
    spec, (c, h, w) = models._apply_options("paper", models._spec("paper"), options)
    maps = models.feature_sizes(spec, h, w)   # (H, W) after conv1, pool1, conv2, pool2, conv3, conv4, conv5, pool5
    conv2, conv5 = spec.convs[1].out, spec.convs[4].out
    sizes = {"conv3 input": conv2 // WORLD * maps[3][0] * maps[3][1],
             "fc6 input": conv5 // WORLD * maps[-1][0] * maps[-1][1]}
    for i, width in enumerate(spec.hidden):
        sizes[f"fc{7 + i} input"] = width // WORLD
    sizes["logits"] = num_classes // WORLD
    return sizes
