"""md.gradcheck passes a right backward, catches a wrong one, and reports the worst element."""
import numpy as np
import pytest

import minidl as md


class WrongSquare(md.Function):
    """y = x^2 with a deliberately wrong derivative (x instead of 2x) at one place."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, grad):
        wrong = 2 * self.x * grad
        wrong.reshape(-1)[3] = self.x.reshape(-1)[3] * grad.reshape(-1)[3]
        return wrong


def test_passes_a_right_backward():
    x = md.tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True)
    assert md.gradcheck(lambda a: (a * a).sum(dim=1), [x])


def test_catches_a_wrong_backward_and_names_the_element():
    x = md.tensor(np.linspace(0.5, 2, 6).reshape(2, 3), requires_grad=True)
    with pytest.raises(md.GradcheckError, match=r"input 0 \(shape \(2, 3\)\) at index \(1, 0\).*numerical.*analytical"):
        md.gradcheck(WrongSquare.apply, [x])


def test_requires_float64():
    with pytest.raises(TypeError, match="float64"):
        md.gradcheck(lambda a: a * 2, [md.tensor([1.0], requires_grad=True)])


def test_needs_an_input_that_requires_grad():
    with pytest.raises(ValueError, match="requires_grad"):
        md.gradcheck(lambda a: a * 2, [md.tensor(np.ones(2))])
