"""minidl.nn: Module, Parameter and the layers (PyTorch's names and signatures)."""
from . import init
from . import utils
from .layers import Flatten, Identity, Linear, ReLU, Sequential
from .module import Module, Parameter
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .lrn import LocalResponseNorm
from .dropout import Dropout
from .normalization import BatchNorm1d, BatchNorm2d
from .conv import Conv2d
from .container import ModuleDict, ModuleList
from .activation import LeakyReLU, LogSoftmax, Sigmoid, Softmax, Tanh
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from . import parallel
