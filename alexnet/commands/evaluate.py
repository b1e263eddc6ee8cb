"""``alexnet evaluate CKPT``: top-1 and top-5 test accuracy of a training checkpoint.

The model is rebuilt from the checkpoint's metadata (variant, options, classes) and the test
data from its configuration (the same resizing and normalisation as in training); a run of
``train --split paper`` is rebuilt as its one-process twin (alexnet.split.twin).
``--ten-crop`` averages the softmax over the 4 corner crops, the centre crop and their
horizontal flips (the paper's test-time procedure).
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

import alexnet
import minidl as md
from minidl import backend
from minidl.data import DataLoader
from minidl.data import batch_transforms as T
from minidl.train import checkpoint as ckpt_io
from minidl.train.checkpoint import CheckpointError
from minidl.train.trainer import check_labels, evaluate

from .. import args as V, runs, split


class NonFinite(RuntimeError):
    """The checkpoint's weights, or the loss they give, are NaN or infinite."""


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="top-1/top-5 of a checkpoint on the test set",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="CKPT", help="a checkpoint.npz written by alexnet train")
    p.add_argument("--ten-crop", action="store_true", help="average over ten crops (corners, centre, flips)")
    p.add_argument("--data-dir", default=None, help="where the dataset is (default: the training run's)")
    p.add_argument("--limit-test", type=V.POSITIVE_INT, default=None, help="only the first N test images (of a fixed shuffle)")
    p.add_argument("--batch-size", type=V.POSITIVE_INT, default=None, help="evaluation batch size")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    p.set_defaults(func=run)


def evaluate_checkpoint(path: str, *, ten_crop: bool = False, data_dir=None, limit_test=None, batch_size=None,
                        device: str = "cpu", progress: bool = False) -> dict:
    # nothing from the file is used before it is checked: metadata and configuration against their
    # schemas, the model it asks for against the weights it holds (sizes from the .npy headers)
    meta = ckpt_io.read_meta(path, require=("model", "num_classes", "config"))
    try:
        cfg = runs.check_config(dict(meta["config"]), f"checkpoint {path!r}")
        options = meta.get("options") or {}
        wanted = alexnet.models.param_count(meta["model"], meta["num_classes"], **options)
    except (ValueError, TypeError) as exc:
        raise ckpt_io.CheckpointError(f"checkpoint {path!r}: json/meta describes no model that can be built "
                                      f"({exc})") from exc
    held = sum(math.prod(shape) for shape in ckpt_io.declared_shapes(path).values())
    if wanted > held:
        raise ckpt_io.CheckpointError(f"checkpoint {path!r}: json/meta asks for model {meta['model']!r} with "
                                      f"options {options} ({wanted:,} parameters), but the file holds "
                                      f"{held:,} weights; refusing to build it")
    if data_dir is not None:
        cfg["data_dir"] = data_dir
    if limit_test is not None:
        cfg["limit_test"] = limit_test
    if device == "gpu" and not md.gpu_available():
        raise ValueError(f"evaluate: --device gpu is not available: {backend._cupy_problem}")
    if cfg.get("split"):     # trained with --split: the checkpoint holds the split network's whole state
        model = split.twin(meta["num_classes"], **options)
    else:
        model = alexnet.build(meta["model"], meta["num_classes"], **options)
    ckpt = ckpt_io.load_checkpoint(path, expected=model)
    ckpt_io.check_model_state(ckpt, model, meta["model"])
    bad = [name for name, value in ckpt.model_state.items()
           if value.dtype.kind in "fc" and not np.isfinite(value).all()]
    if bad:
        raise NonFinite(f"checkpoint {path!r} holds non-finite weights (NaN or inf) in {bad[:5]}"
                        + (" ..." if len(bad) > 5 else "") + "; an accuracy computed with them means nothing")
    model.load_state_dict(ckpt.model_state)
    model.to(device)
    _, test_ds = runs.load_datasets(cfg, model.input_shape[1:], train=False)
    check_labels(test_ds, meta["num_classes"], f"the test set of {cfg['dataset']}")
    image_hw = tuple(test_ds.images.shape[2:]) if getattr(test_ds, "images", None) is not None else None
    _, test_tf = runs.make_transforms(cfg, image_hw, model.input_shape, ten_crop=ten_crop)
    loader = DataLoader(test_ds, batch_size=batch_size or cfg.get("eval_batch_size") or 256, transform=test_tf,
                        prefetch=cfg.get("prefetch", 2))
    predict = None
    if ten_crop:
        def model_fn(x):
            return model(md.Tensor(backend.to_device(x, device))).data

        def predict(x):
            return np.log(np.maximum(T.ten_crop_predict(model_fn, x, model.input_shape[1:]), 1e-30))
    result = evaluate(model, loader, meta["num_classes"], device=device, predict=predict, progress=progress)
    if not math.isfinite(result.loss):
        raise NonFinite(f"checkpoint {path!r}: the test loss is {result.loss} (top-1 {result.top1:.4f} over "
                        f"{result.count} images); the model overflows on this data, its accuracy is unreliable")
    return {"checkpoint": path, "model": meta["model"], "dataset": cfg["dataset"], "epoch": meta.get("epoch"),
            "ten_crop": ten_crop, "images": result.count, "top1": result.top1, "top5": result.top5,
            "loss": result.loss, "seconds": result.seconds}


def run(args) -> int:
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    try:
        out = evaluate_checkpoint(args.checkpoint, ten_crop=args.ten_crop, data_dir=args.data_dir,
                                  limit_test=args.limit_test, batch_size=args.batch_size, device=args.device,
                                  progress=progress)
    except NonFinite as exc:
        print(f"alexnet evaluate: warning: {exc}", file=sys.stderr)
        return 3
    except (ValueError, OSError, CheckpointError) as exc:
        print(f"alexnet evaluate: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['model']} on {out['dataset']} ({out['images']} test images{', ten-crop' if out['ten_crop'] else ''}, "
              f"checkpoint after epoch {out['epoch']}): top-1 {out['top1']:.4f}  top-5 {out['top5']:.4f}  "
              f"loss {out['loss']:.4f}")
    return 0
