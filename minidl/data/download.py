"""Downloading, checksums, cache directories and safe archive extraction.

- ``download(url, path, sha256=None, md5=None)`` streams ``url`` into a temporary file beside
  ``path``, hashes it on the way, and renames it to ``path`` only when the checksum matches
  (so a half-finished or corrupt download never sits at ``path``).
- ``file_digest`` / ``verify_file`` hash files in chunks; a mismatch raises ``ChecksumError``
  naming the file, the expected and the actual checksum.
- ``cache_dir(name)``: ``$MINIDL_DATA/<name>`` when the variable is set, else
  ``~/.cache/minidl/<name>``.
- ``extract_tar(archive, dest, wanted=None)`` extracts regular files only, refusing absolute
  paths, ``..`` components, links and device files (no path traversal).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path, PurePosixPath

__all__ = ["ChecksumError", "DatasetNotFoundError", "cache_dir", "download", "extract_tar", "file_digest",
           "verify_file"]


class ChecksumError(ValueError):
    """A file's checksum differs from the published one."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is in none of the places searched and could not be downloaded."""


def cache_dir(name: str) -> Path:
    """Per-user cache directory of dataset ``name``: ``$MINIDL_DATA/<name>`` or ``~/.cache/minidl/<name>``."""
    base = os.environ.get("MINIDL_DATA")
    return (Path(base) if base else Path.home() / ".cache" / "minidl") / name


def _algorithm(sha256, md5, who):
    if sha256 is not None and md5 is not None:
        raise ValueError(f"{who}: give one of sha256= or md5=, not both")
    if sha256 is None and md5 is None:
        raise ValueError(f"{who}: a checksum is required (sha256= or md5=)")
    return ("sha256", sha256.lower()) if sha256 is not None else ("md5", md5.lower())


def file_digest(path, algorithm: str = "sha256", chunk_size: int = 1 << 20) -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def verify_file(path, sha256: str | None = None, md5: str | None = None) -> None:
    """Raise ChecksumError (naming the file and both checksums) unless ``path`` has the given checksum."""
    algorithm, expected = _algorithm(sha256, md5, "verify_file")
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise ChecksumError(f"checksum mismatch for {path}: expected {algorithm} {expected}, got {actual}; "
                            "the file is corrupt or not the published version: delete it and fetch it again")


def download(url: str, path, sha256: str | None = None, md5: str | None = None, *, timeout: float = 60.0,
             progress: bool = False) -> Path:
    """Download ``url`` to ``path`` and check its checksum (SHA-256 or MD5) before it appears there.

    If ``path`` already exists with the right checksum nothing is fetched. The data goes to a
    temporary file in the same directory, renamed to ``path`` after the checksum matched; on any
    failure the temporary file is removed and the error propagates (``ChecksumError`` for a
    mismatch, ``urllib.error.URLError``/``OSError`` for network and file errors).
    """
    algorithm, expected = _algorithm(sha256, md5, "download")
    path = Path(path)
    if path.is_file() and file_digest(path, algorithm) == expected:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".part")
    h = hashlib.new(algorithm)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) if progress else 0
            bar = None
            if progress:
                from tqdm import tqdm  # noqa: PLC0415 - loaded only when a download shows progress: keeps import minidl light
                bar = tqdm(total=total or None, unit="B", unit_scale=True, desc=path.name)
            while chunk := response.read(1 << 20):
                h.update(chunk)
                out.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
            if bar is not None:
                bar.close()
        actual = h.hexdigest()
        if actual != expected:
            raise ChecksumError(f"download: checksum mismatch for {path.name} from {url}: expected {algorithm} "
                                f"{expected}, got {actual}; the file was not kept")
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    return path


def _safe_member_path(archive, member: tarfile.TarInfo) -> PurePosixPath:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts or member.name.startswith(("/", "\\")) or "\\" in member.name:
        raise ValueError(f"extract_tar: refusing unsafe member {member.name!r} in {archive} (absolute path or '..')")
    return name


def extract_tar(archive, dest, wanted=None) -> list[Path]:
    """Extract regular files of a (possibly compressed) tar archive into ``dest``; return their paths.

    ``wanted``: an iterable of member names to extract (others are ignored; a missing one is an
    error). Without it every member is extracted. Members with absolute paths or ``..``
    components, symbolic/hard links and special files raise ValueError when they would be
    extracted; files are written by this function (never by ``tarfile.extract``), each checked
    to land inside ``dest``.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    wanted_set = None if wanted is None else set(wanted)
    written = []
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            if wanted_set is not None and member.name not in wanted_set:
                continue
            name = _safe_member_path(archive, member)
            if member.isdir():
                continue
            if not member.isfile():
                raise ValueError(f"extract_tar: refusing member {member.name!r} in {archive}: "
                                 "not a regular file (link or special file)")
            target = (root / Path(*name.parts)).resolve()
            if root not in target.parents:
                raise ValueError(f"extract_tar: member {member.name!r} in {archive} would be written outside {dest}")
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            tmp = target.with_name(target.name + ".part")
            with source, open(tmp, "wb") as out:
                shutil.copyfileobj(source, out)
            os.replace(tmp, target)
            written.append(target)
            if wanted_set is not None:
                wanted_set.discard(member.name)
    if wanted_set:
        raise ValueError(f"extract_tar: {archive} lacks the members {sorted(wanted_set)}")
    return written
