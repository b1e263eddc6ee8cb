"""minidl.nn: Module, Parameter and the layers (PyTorch's names and signatures)."""
from . import init
from .layers import Flatten, Identity, Linear, ReLU, Sequential
from .module import Module, Parameter
