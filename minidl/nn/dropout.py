"""nn.Dropout (as torch.nn.Dropout, plus the paper's test-time scaling as mode="paper")."""
from __future__ import annotations

from .. import functional as F
from .module import Module


class Dropout(Module):
    """Zero elements with probability p while training (module.train()); see F.dropout for ``mode``."""

    def __init__(self, p: float = 0.5, inplace: bool = False, mode: str = "inverted"):
        super().__init__()
        self.p, self.mode = F._dropout_settings("Dropout", p, mode)
        self.inplace = inplace

    def forward(self, x):
        return F.dropout(x, self.p, self.training, mode=self.mode)

    def extra_repr(self):
        return f"p={self.p}" + (f", mode={self.mode!r}" if self.mode != "inverted" else "")
