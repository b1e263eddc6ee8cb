"""tests/parity.py's check: torch's side defaults to minidl's expression, and a mismatch is caught."""
import numpy as np
import pytest

from parity import check


def test_same_expression_on_both_sides():
    check(lambda a, b: (a * b + a.exp() / (b * b + 1)).sum(dim=1), shapes=[(3, 4), (3, 4)])


def test_a_wrong_expression_fails():
    with pytest.raises(AssertionError, match="forward"):
        check(lambda a: a * 2, lambda a: a * 2.001, [(3, 4)])
    with pytest.raises(AssertionError, match="grad of input 0"):   # same forward value, wrong gradient
        check(lambda a: a.sum(), lambda a: (a + (a - a.detach()) * 0.5).sum(), [(3,)], dtypes=(np.float64,))
