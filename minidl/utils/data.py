"""torch.utils.data's names for minidl's loader and datasets (they live in minidl.data).

    from minidl.utils.data import DataLoader, Dataset, TensorDataset, random_split
"""
from ..data.collate import default_collate
from ..data.dataset import ConcatDataset, Dataset, Subset, TensorDataset, random_split
from ..data.loader import DataLoader

__all__ = ["ConcatDataset", "DataLoader", "Dataset", "Subset", "TensorDataset", "default_collate", "random_split"]
