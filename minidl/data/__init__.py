"""minidl.data: datasets, batch transforms and a deterministic, prefetching DataLoader.

    from minidl.data import FashionMNIST, DataLoader, transforms as T
    train = FashionMNIST(train=True)                 # .images uint8 (60000, 1, 28, 28), .targets int64
    loader = DataLoader(train, batch_size=128, shuffle=True,
                        transform=T.Compose([T.RandomCrop(28, padding=2), T.RandomHorizontalFlip()]))
    for x, y in loader: ...                          # x float32 (128, 1, 28, 28) in [0, 1], y int64

See docs/data.md.
"""
from . import transforms
from .cifar import CIFAR10
from .download import ChecksumError, DatasetNotFoundError, download
from .fashion_mnist import FashionMNIST
from .folder import ImageFolder
from .idx import IDXError, read_idx
from .loader import DataLoader
from .sampler import DistributedSampler, ShardSampler

__all__ = ["CIFAR10", "ChecksumError", "DataLoader", "DatasetNotFoundError", "DistributedSampler", "FashionMNIST",
           "IDXError", "ImageFolder", "ShardSampler", "download", "read_idx", "transforms"]
