"""nn.Dropout (as torch.nn.Dropout, plus the paper's test-time scaling as mode="paper")."""
from __future__ import annotations

import numbers

from .. import functional as F
from .module import Module


class Dropout(Module):
    """Zero elements with probability p while training (module.train()); see F.dropout for ``mode``."""

    def __init__(self, p: float = 0.5, inplace: bool = False, mode: str = "inverted"):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must be a probability in [0, 1], got {p!r}")
        if mode not in ("inverted", "paper"):
            raise ValueError(f"Dropout: mode must be 'inverted' or 'paper', got {mode!r}")
        self.p, self.inplace, self.mode = float(p), inplace, mode

    def forward(self, x):
        return F.dropout(x, self.p, self.training, mode=self.mode)

    def extra_repr(self):
        return f"p={self.p}" + (f", mode={self.mode!r}" if self.mode != "inverted" else "")
