"""Write stand-in datasets from the real Fashion-MNIST files, for trying the seed recipes offline.

The recipes of docs/training.md want CIFAR-10, Caltech-101 and ImageNet, which a machine without
network cannot fetch.  This script turns Fashion-MNIST (installed by ``apt-get install
dataset-fashion-mnist``) into the same on-disk formats, so that each recipe's whole pipeline -- the
reader, the augmentation, the model, the optimizer and schedule -- can be tried on real images:

    OUT/cifar-10-batches-bin/   CIFAR-10's binary batches (data_batch_1..5.bin, test_batch.bin,
                                batches.meta.txt): each image zero-padded 28 -> 32 and repeated
                                over 3 channels (3073-byte records: label byte + R, G, B planes)
    OUT/folder/train/<class>/   an ImageNet-style folder: JPEGs of 256x256 RGB, each image upscaled
    OUT/folder/val/<class>/     with Pillow's bilinear filter (``--per-class`` train images per
                                class, a tenth as many validation images from the test set)

The figures of a run on these are *not* the figures of the real datasets (Fashion-MNIST is an
easier, grey-scale problem); docs/training.md labels them as stand-in trials.

    python scripts/standin_data.py --out data/standin [--per-class 1000]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from minidl.data import FashionMNIST


def write_cifar_format(out: Path, train, test) -> None:
    """Fashion-MNIST as CIFAR-10 binary batches (5 training batches of 12,000, one test batch)."""
    d = out / "cifar-10-batches-bin"
    d.mkdir(parents=True, exist_ok=True)

    def records(images, labels):
        padded = np.zeros((len(images), 3, 32, 32), dtype=np.uint8)
        padded[:, :, 2:30, 2:30] = images.reshape(-1, 1, 28, 28)      # grey -> the same R, G and B
        rec = np.empty((len(images), 3073), dtype=np.uint8)
        rec[:, 0] = labels
        rec[:, 1:] = padded.reshape(len(images), -1)
        return rec.tobytes()

    x, y = train.images, train.targets
    for i, part in enumerate(np.array_split(np.arange(len(x)), 5), start=1):
        (d / f"data_batch_{i}.bin").write_bytes(records(x[part], y[part]))
    (d / "test_batch.bin").write_bytes(records(test.images, test.targets))
    (d / "batches.meta.txt").write_text("\n".join(c.replace("/", "-") for c in train.classes) + "\n")


def write_folder(out: Path, train, test, per_class: int) -> None:
    """The first ``per_class`` training images of each class (and per_class // 10 test images) as JPEGs."""
    for split, ds, n in (("train", train, per_class), ("val", test, max(1, per_class // 10))):
        for label, name in enumerate(train.classes):
            d = out / "folder" / split / name.replace("/", "-").replace(" ", "_")
            d.mkdir(parents=True, exist_ok=True)
            for i in np.flatnonzero(ds.targets == label)[:n]:
                img = Image.fromarray(ds.images[i].reshape(28, 28)).resize((256, 256), Image.BILINEAR)
                img.convert("RGB").save(d / f"{i:05d}.jpg", quality=90)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="data/standin", help="where to write (default: data/standin)")
    p.add_argument("--per-class", type=int, default=1000, help="folder: training images per class")
    p.add_argument("--fashion-mnist", default=None, help="directory of the Fashion-MNIST IDX files")
    args = p.parse_args(argv)
    if args.per_class < 1:
        p.error(f"--per-class must be a positive integer, got {args.per_class}")
    out = Path(args.out)
    train, test = FashionMNIST(args.fashion_mnist, train=True), FashionMNIST(args.fashion_mnist, train=False)
    write_cifar_format(out, train, test)
    write_folder(out, train, test, args.per_class)
    print(f"wrote {out}/cifar-10-batches-bin and {out}/folder/{{train,val}}")


if __name__ == "__main__":
    main()
