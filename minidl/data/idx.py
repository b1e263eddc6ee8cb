"""The IDX file format (MNIST, Fashion-MNIST), gzipped or not.

Layout (all integers big-endian):

    bytes 0-1   0x00 0x00
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3     number of dimensions d
    4 .. 4+4d   the d dimension sizes, uint32 each
    then        prod(sizes) elements in row-major (C) order

``read_idx(path)`` returns the array in native byte order; it recognises gzip by its magic
bytes (0x1f 0x8b), not by the file name, and checks the header against the file size, so a
truncated or padded file is an ``IDXError`` naming the file rather than a wrong-shaped array.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["IDXError", "parse_idx", "read_idx", "read_idx_bytes", "write_idx"]

_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
          0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {np.dtype(v).newbyteorder("=") if v.itemsize > 1 else v: k for k, v in _TYPES.items()}


class IDXError(ValueError):
    """A file that is not a well-formed IDX file (wrong magic number, truncated, bad gzip stream)."""


def read_idx_bytes(path) -> bytes:
    """The (decompressed) bytes of an IDX file; gzip is detected by its magic bytes."""
    path = Path(path)
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as e:
            raise IDXError(f"read_idx: {path} is a truncated or corrupt gzip file ({e})") from None
    return data


def parse_idx(data: bytes, name="<bytes>") -> np.ndarray:
    """Parse the bytes of an IDX file (``name`` is used in error messages)."""
    if len(data) < 4:
        raise IDXError(f"read_idx: {name} is truncated: {len(data)} bytes, shorter than the 4-byte magic number")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _TYPES:
        raise IDXError(f"read_idx: {name} has a wrong magic number 0x{data[:4].hex()} (expected 0x0000 then an "
                       f"element type in {{{', '.join(f'0x{c:02x}' for c in _TYPES)}}} and the rank): not an IDX file")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(f"read_idx: {name} is truncated: {len(data)} bytes, shorter than its {header}-byte header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _TYPES[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise IDXError(f"read_idx: {name} is {what}: header says shape {tuple(shape)} of {dtype.name} "
                       f"({expected} bytes with the header) but the file has {len(data)} bytes")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a NumPy array in native byte order."""
    return parse_idx(read_idx_bytes(path), str(path))


def write_idx(path, array, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file; gzip it when ``compress`` (default: when the name ends in .gz)."""
    path = Path(path)
    array = np.ascontiguousarray(array)
    native = array.dtype.newbyteorder("=") if array.dtype.itemsize > 1 else array.dtype
    if native not in _CODES:
        raise TypeError(f"write_idx: dtype {array.dtype} has no IDX element type")
    code = _CODES[native]
    data = (struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
            + array.astype(_TYPES[code], copy=False).tobytes())
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path
