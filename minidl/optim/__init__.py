"""minidl.optim: SGD (PyTorch's rule and the paper's), Adam, AdamW, RMSprop, Adadelta, and learning-rate schedules."""
from . import lr_scheduler
from .adadelta import Adadelta
from .adam import Adam
from .adamw import AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD
