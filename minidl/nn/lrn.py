"""LocalResponseNorm (as torch.nn.LocalResponseNorm): normalisation across channels."""
from __future__ import annotations

from .. import functional as F
from .module import Module


class LocalResponseNorm(Module):
    """b_c = a_c / (k + alpha/size * sum of a^2 over size neighbouring channels)^beta (PyTorch's formula).

    The paper's LRN (k=2, n=5, alpha=1e-4, beta=0.75) does not divide alpha by n; it is
    LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0) here.
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = F._lrn_settings("LocalResponseNorm", size, alpha, beta, k)

    def forward(self, x):
        return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
