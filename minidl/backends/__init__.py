"""Settings of the algorithms behind the operations (as torch.backends): ``minidl.backends.conv``.

(Device selection lives in minidl.backend, singular.)
"""
from . import conv  # noqa: F401
