"""minidl.optim: SGD (PyTorch's rule and the paper's), Adam, and learning-rate schedules."""
from . import lr_scheduler
from .adam import Adam
from .optimizer import Optimizer
from .sgd import SGD
