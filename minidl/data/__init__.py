"""minidl.data: datasets, per-sample and batch transforms, and a deterministic DataLoader.

    from minidl.data import FashionMNIST, DataLoader, batch_transforms as BT
    train = FashionMNIST(train=True)                 # .images uint8 (60000, 1, 28, 28), .targets int64
    loader = DataLoader(train, batch_size=128, shuffle=True,       # the fast path: uint8 / 255, then
                        transform=BT.Compose([BT.RandomCrop(28, padding=2), BT.RandomHorizontalFlip()]))
    for x, y in loader: ...                          # Tensors: x float32 (128, 1, 28, 28) in [0, 1], y int64

    from minidl.data import transforms               # torchvision's per-sample transforms
    train = FashionMNIST(train=True, transform=transforms.ToTensor())   # the per-sample path

Any Dataset (``__getitem__``/``__len__``) works: its samples are stacked by ``default_collate``
and otherwise left as they are. See docs/data.md.
"""
from . import batch_transforms, transforms
from .cifar import CIFAR10
from .collate import default_collate
from .dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split
from .download import ChecksumError, DatasetNotFoundError, download
from .fashion_mnist import FashionMNIST
from .folder import ImageFolder
from .idx import IDXError, read_idx
from .loader import DataLoader
from .sampler import DistributedSampler, ShardSampler

__all__ = ["CIFAR10", "ChecksumError", "ConcatDataset", "DataLoader", "Dataset", "DatasetNotFoundError",
           "DistributedSampler", "FashionMNIST", "IDXError", "ImageFolder", "ShardSampler", "Subset", "TensorDataset",
           "batch_transforms", "default_collate", "download", "random_split", "read_idx", "transforms"]
