import pytest

import minidl as md
from minidl import backend


@pytest.fixture(autouse=True)
def _seed():
    md.manual_seed(0)
    yield


def pytest_collection_modifyitems(config, items):
    """Skip GPU tests cleanly where CuPy or a GPU is missing."""
    if backend.gpu_available():
        return
    reason = f"no GPU: {backend.gpu_unavailable_reason()}"
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))

