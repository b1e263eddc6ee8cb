"""minidl.utils, laid out as torch.utils: ``minidl.utils.data`` holds the DataLoader and datasets."""
from . import data

__all__ = ["data"]
