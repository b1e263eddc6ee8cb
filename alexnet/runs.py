"""From a run's configuration to the objects that train: datasets, transforms, loaders, model,
optimizer and schedule.  Shared by ``python -m alexnet train`` and ``evaluate``.

A configuration is a plain JSON-able dict (stored in every checkpoint, so ``evaluate`` and
``--resume`` rebuild exactly the same pipeline).  ``resolve_config(given)`` fills what the
command line left out (None) from the model's recipe (``alexnet.recipe(name)``: any recipe key
named like a configuration key is used as its default, so a recipe is the one place to tune a
variant's defaults) and then from the fallbacks below.

Input pipeline (``make_transforms``), for a model that takes C x H x W:
  in-memory datasets (Fashion-MNIST 28x28, CIFAR-10 32x32):
      train:  [Resize(H, W) if the images differ] [RandomCrop(H, padding) + flip if augment]
              [PCA lighting] Normalize(mean, std of the training images)
      test:   [Resize] Normalize
  image folders, decoded and resized to S x S with S = round(H * 256 / 224) (256 for 224/227):
      train:  RandomCrop(H) + flip if augment, else CenterCrop(H); [PCA lighting]; Normalize
      test:   CenterCrop(H); Normalize (ImageNet's mean and std)
  ten-crop evaluation replaces the test crop by the 4 corners + centre and their flips of the
  S x S image (in-memory datasets: of the image padded by the training padding).
"""
from __future__ import annotations

import math
import os

import numpy as np

import alexnet
from minidl import data, optim
from minidl.data import Subset
from minidl.data import batch_transforms as T
from minidl.data.folder import find_classes
from minidl.train import Schedule
from minidl.train.trainer import SCHEDULES

from . import args as V, models, split

DATASETS = ("fashion-mnist", "cifar10", "folder")
DATASET_ALIASES = {"imagefolder": "folder", "image-folder": "folder", "fashion_mnist": "fashion-mnist",
                   "fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "cifar": "cifar10"}
OPTIMIZERS = ("sgd", "sgd-paper", "adam")
MODEL_OPTIONS = ("width", "norm", "dropout", "init", "pool")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# Fallbacks for keys that neither the command line nor the recipe set.
FALLBACKS = dict(model="mini", data_dir=None, nesterov=False, schedule_args={}, device="cpu", seed=0, out=None,
                 limit_train=None, limit_test=None, augment=None, pca_lighting=None, crop_padding=None,
                 prefetch=2, time_budget=None, eval_batch_size=None, num_classes=None, val_fraction=0.1,
                 warmup=None, width=None, norm=None, dropout=None, init=None, pool=None, split=None,
                 label_smoothing=None)
RECIPE_KEYS = ("dataset", "epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "schedule")


def resolve_config(given: dict) -> dict:
    """The full configuration: ``given`` (None = not given) over the recipe over the fallbacks."""
    model = given.get("model") or FALLBACKS["model"]
    recipe = alexnet.recipe(model)
    cfg = {}
    for key in set(FALLBACKS) | set(RECIPE_KEYS):
        value = given.get(key)
        if value is None:
            value = recipe.get(key, FALLBACKS.get(key))
        cfg[key] = value
    cfg["model"] = model
    cfg["dataset"] = DATASET_ALIASES.get(cfg["dataset"], cfg["dataset"])
    cfg["schedule"] = {"constant": "none"}.get(cfg["schedule"], cfg["schedule"])
    cfg["schedule_args"] = dict(cfg["schedule_args"] or {})
    if cfg["warmup"] is not None:
        cfg["schedule_args"]["warmup"] = cfg["warmup"]
    elif cfg["schedule"] == "cosine":
        cfg["schedule_args"].setdefault("warmup", 0.05)
    for key in ("step_size", "gamma", "patience", "factor"):
        if given.get(key) is not None:
            cfg["schedule_args"][key] = given[key]
    if cfg["dataset"] not in DATASETS:
        raise ValueError(f"train: unknown dataset {cfg['dataset']!r}; choose one of {DATASETS}")
    if cfg["optimizer"] not in OPTIMIZERS:
        raise ValueError(f"train: unknown optimizer {cfg['optimizer']!r}; choose one of {OPTIMIZERS}")
    if cfg["split"] is not None and model != "paper":
        raise ValueError(f"train: --split {cfg['split']} splits the paper variant only (alexnet.split.twin builds "
                         f"it); use --model paper, not --model {model}")
    if cfg["split"] is not None and cfg["norm"] not in (None, *split.NORMS):
        raise ValueError(f"train: --split {cfg['split']} needs --norm lrn or none (the halves do not share "
                         "batch-norm statistics)")
    if cfg["dataset"] == "folder" and not cfg["data_dir"]:
        raise ValueError("train: --dataset folder needs --data-dir DIR (one sub-folder per class, or "
                         "DIR/train and DIR/val with one sub-folder per class each)")
    for key in ("epochs", "batch_size"):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ValueError(f"train: --{key.replace('_', '-')} must be a positive integer, got {cfg[key]!r}")
    for key in ("limit_train", "limit_test"):
        if cfg[key] is not None and cfg[key] < 1:
            raise ValueError(f"train: --{key.replace('_', '-')} must be positive, got {cfg[key]}")
    if cfg["augment"] is None:
        cfg["augment"] = cfg["dataset"] != "fashion-mnist"
    if cfg["pca_lighting"] is None:
        cfg["pca_lighting"] = model == "paper"
    if cfg["eval_batch_size"] is None:
        cfg["eval_batch_size"] = 2 * cfg["batch_size"]
    if cfg["out"] is None:
        cfg["out"] = os.path.join("runs", f"{model}-{cfg['dataset']}")
    return check_config(dict(sorted(cfg.items())), "train")


def _config_rules() -> dict:
    """key -> validator (alexnet.args) or tuple of choices, for every key a configuration may hold."""
    return dict(
        epochs=V.POSITIVE_INT, batch_size=V.POSITIVE_INT, lr=V.POSITIVE_FLOAT, momentum=V.MOMENTUM,
        weight_decay=V.NONNEG_FLOAT, seed=V.NONNEG_INT, limit_train=V.POSITIVE_INT, limit_test=V.POSITIVE_INT,
        num_classes=V.POSITIVE_INT, in_channels=V.POSITIVE_INT, width=V.WIDTH, dropout=V.PROBABILITY,
        crop_padding=V.NONNEG_INT, prefetch=V.NONNEG_INT, label_smoothing=V.PROBABILITY, eval_batch_size=V.POSITIVE_INT,
        time_budget=V.TIME_BUDGET, val_fraction=V.Number(float, 0, 1, low_open=True, high_open=True),
        step_size=V.POSITIVE_INT, gamma=V.GAMMA, patience=V.NONNEG_INT, factor=V.FACTOR, warmup=V.FRACTION,
        model=tuple(models.names()), dataset=DATASETS, optimizer=OPTIMIZERS, schedule=SCHEDULES,
        device=("cpu", "gpu"), split=("paper",), norm=models.NORMS, init=models.INITS, pool=tuple(models.POOLS))


def check_config(cfg: dict, where: str) -> dict:
    """``cfg`` if every value it holds is of the right type and range, else ValueError naming the key.

    The same rules as the command line's (alexnet.args); used on a configuration read back from
    a checkpoint (``where`` names the file) before anything is built from it."""
    if not isinstance(cfg, dict):
        raise ValueError(f"{where}: the configuration must be an object, got {type(cfg).__name__}")
    values = dict(cfg)
    schedule_args = values.get("schedule_args") or {}
    if not isinstance(schedule_args, dict):
        raise ValueError(f"{where}: configuration key 'schedule_args' must be an object, got {schedule_args!r:.80}")
    values.update({k: v for k, v in schedule_args.items() if k in ("step_size", "gamma", "patience", "factor",
                                                                   "warmup")})
    for key, rule in _config_rules().items():
        value = values.get(key)
        if value is None:
            continue
        if isinstance(rule, tuple):
            if value not in rule:
                raise ValueError(f"{where}: configuration key {key!r} must be one of {rule}, got {value!r:.80}")
        else:
            rule.check(value, f"{where}: configuration key {key!r}")
    for key in ("data_dir", "out"):
        if cfg.get(key) is not None and not isinstance(cfg[key], str):
            raise ValueError(f"{where}: configuration key {key!r} must be a string, got {cfg[key]!r:.80}")
    norm = cfg.get("normalize")
    if norm is not None:
        ok = isinstance(norm, dict) and all(
            isinstance(norm.get(k), list) and norm[k] and all(
                not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) for v in norm[k])
            for k in ("mean", "std"))
        if not ok or min(norm["std"]) <= 0:
            raise ValueError(f"{where}: configuration key 'normalize' must hold lists 'mean' and 'std' of finite "
                             f"numbers (std > 0), got {norm!r:.120}")
    return cfg


# --------------------------------------------------------------------------------- datasets
def limit(dataset, n):
    """The first n samples of a fixed shuffle (so that every class appears), in dataset order."""
    if n is None or n >= len(dataset):
        return dataset
    order = np.random.default_rng(12345).permutation(len(dataset))
    return Subset(dataset, np.sort(order[:n]))


def folder_size(h: int) -> int:
    """Side S of the decoded folder images for crops of side h: 256 for 224 and 227 (the paper's)."""
    return 256 if h in (224, 227) else int(round(h * 256 / 224))


def load_datasets(cfg: dict, input_hw: tuple, train: bool = True):
    """(train, test) datasets of the configuration (train None when ``train`` is False)."""
    name, root = cfg["dataset"], cfg["data_dir"]
    if name == "fashion-mnist":
        train_ds = data.FashionMNIST(root=root, train=True) if train else None
        test_ds = data.FashionMNIST(root=root, train=False)
    elif name == "cifar10":
        train_ds = data.CIFAR10(root=root, train=True) if train else None
        test_ds = data.CIFAR10(root=root, train=False)
    else:
        size = folder_size(max(input_hw))
        split = {d: os.path.join(root, d) for d in ("train", "val", "test") if os.path.isdir(os.path.join(root, d))}
        if "train" in split and ("val" in split or "test" in split):
            # val/ takes train/'s class list, so a class val/ lacks does not shift the labels of the others
            classes = find_classes(split["train"])
            train_ds = data.ImageFolder(split["train"], size=size, classes=classes) if train else None
            test_ds = data.ImageFolder(split.get("val") or split["test"], size=size, classes=classes)
        else:   # one folder: hold out val_fraction of each class (a fixed choice, independent of --seed)
            full = data.ImageFolder(root, size=size)
            rng = np.random.default_rng(0)
            test_idx = []
            for c in range(len(full.classes)):
                members = np.flatnonzero(full.targets == c)
                k = int(np.ceil(len(members) * cfg["val_fraction"])) if len(members) > 1 else 0
                test_idx.extend(rng.permutation(members)[:k])
            test_mask = np.zeros(len(full), dtype=bool)
            test_mask[np.asarray(test_idx, dtype=np.int64)] = True
            train_ds = data.Subset(full, np.flatnonzero(~test_mask)) if train else None
            test_ds = data.Subset(full, np.flatnonzero(test_mask))
    if train:
        train_ds = limit(train_ds, cfg["limit_train"])
    test_ds = limit(test_ds, cfg["limit_test"])
    for ds, what in ((train_ds, "training"), (test_ds, "test")):
        if ds is not None and len(ds) == 0:
            raise ValueError(f"{name} under {root or 'the default location'}: no {what} images "
                             + ("(every class has a single image, so none is held out for testing; add images or "
                                "give DIR/train and DIR/val)" if what == "test" and name == "folder" else ""))
    return train_ds, test_ds


def dataset_channels(dataset) -> int:
    images = getattr(dataset, "images", None)
    if images is not None:
        return int(images.shape[1])
    return 3   # ImageFolder decodes to RGB


def normalization(cfg: dict, train_ds) -> dict:
    """Per-channel mean and std: of the training images (first 10,000) when in memory, else ImageNet's."""
    if cfg["dataset"] == "folder" or getattr(train_ds, "images", None) is None:
        return {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    images = train_ds.images[:10000].astype(np.float64) / 255
    return {"mean": images.mean(axis=(0, 2, 3)).tolist(), "std": images.std(axis=(0, 2, 3)).tolist()}


def pca_basis(cfg: dict, train_ds) -> dict:
    images = getattr(train_ds, "images", None)
    if cfg["dataset"] == "folder" or images is None:
        return {"eigval": T.IMAGENET_PCA["eigval"].tolist(), "eigvec": T.IMAGENET_PCA["eigvec"].tolist()}
    eigval, eigvec = T.pca_lighting_basis(images[:10000])
    return {"eigval": eigval.tolist(), "eigvec": eigvec.tolist()}


class Pad:
    """Zero padding of every image by ``padding`` pixels on each side (ten-crop of padded images)."""

    def __init__(self, padding: int):
        self.padding = int(padding)

    def __call__(self, x, rng=None):
        p = self.padding
        return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x


def crop_padding(cfg: dict, h: int) -> int:
    if cfg["crop_padding"] is not None:
        return int(cfg["crop_padding"])
    return 4 if h >= 32 else 2


def make_transforms(cfg: dict, image_hw: tuple, input_shape: tuple, ten_crop: bool = False):
    """(train transform, test transform) for images of size ``image_hw`` and a model input (C, H, W).

    With ``ten_crop`` the test transform stops before the final crop (the caller crops ten times).
    """
    c, h, w = input_shape
    norm = T.Normalize(cfg["normalize"]["mean"], cfg["normalize"]["std"])
    train, test = [], []
    if cfg["dataset"] == "folder":
        if cfg["augment"]:
            train += [T.RandomCrop((h, w)), T.RandomHorizontalFlip()]
        else:
            train.append(T.CenterCrop((h, w)))
        if not ten_crop:
            test.append(T.CenterCrop((h, w)))
    else:
        if tuple(image_hw) != (h, w):
            train.append(T.Resize((h, w)))
            test.append(T.Resize((h, w)))
        pad = crop_padding(cfg, h)
        if cfg["augment"]:
            train += [T.RandomCrop((h, w), padding=pad), T.RandomHorizontalFlip()]
        if ten_crop and cfg["augment"] and pad:
            test.append(Pad(pad))
    if cfg["pca_lighting"] and c == 3:
        train.append(T.PCALighting(cfg["pca"]["eigval"], cfg["pca"]["eigvec"], alphastd=0.1))
    train.append(norm)
    test.append(norm)
    return T.Compose(train), T.Compose(test)


# ------------------------------------------------------------------------------ model, optimizer
def model_options(cfg: dict) -> dict:
    options = {k: cfg[k] for k in MODEL_OPTIONS if cfg.get(k) is not None}
    if cfg.get("in_channels") is not None:
        options["in_channels"] = cfg["in_channels"]
    return options


def make_optimizer(cfg: dict, params):
    if cfg["optimizer"] == "adam":
        return optim.Adam(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    rule = "paper" if cfg["optimizer"] == "sgd-paper" else "pytorch"
    return optim.SGD(params, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"],
                     nesterov=bool(cfg["nesterov"]) and rule == "pytorch", rule=rule)


def make_schedule(cfg: dict, optimizer, steps_per_epoch: int):
    known = ("step_size", "gamma", "factor", "patience", "times", "warmup", "final", "pct_start", "div_factor",
             "final_div_factor")
    args = {k: v for k, v in cfg["schedule_args"].items() if k in known}
    return Schedule(cfg["schedule"], optimizer, epochs=cfg["epochs"], steps_per_epoch=steps_per_epoch, **args)
