"""One writer per output directory: an exclusive lock file, OUT/.lock.

    with OutDirLock("runs/x"):          # raises OutDirBusy naming the holder (PID, host) if taken
        ...train, write checkpoints...

The lock is ``fcntl.flock`` on OUT/.lock, held open for the whole run; the file says who holds it
(PID, host, start time), for the message a second writer gets.  The operating system drops a
flock when its process dies, however it dies, so a lock can never outlive its holder: a lock
file left behind by a killed run is simply taken over (with a note naming the dead PID).  A flock
belongs to one open file, so a second attempt in the same process is refused too.

Releasing removes the file before closing it.  Another process may then hold a lock on the
removed file, so ``acquire`` checks after locking that the path still names the file it locked,
and starts again if not.  Where fcntl is missing (Windows) the file is created with O_EXCL
instead, and a leftover file whose PID no longer runs on this host is taken over.
"""
from __future__ import annotations

import json
import os
import socket
import time

try:
    import fcntl
except ImportError:          # Windows: O_EXCL with a PID check instead
    fcntl = None

LOCK_NAME = ".lock"


class OutDirBusy(RuntimeError):
    """Another run (named in the message) is writing to the output directory."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:      # alive, owned by someone else
        return True
    return True


def _read_owner(path: str) -> dict:
    try:
        with open(path) as f:
            owner = json.loads(f.read() or "{}")
        return owner if isinstance(owner, dict) else {}
    except (OSError, ValueError):
        return {}


def _describe(owner: dict) -> str:
    if not owner:
        return "another process (its lock file names no owner yet)"
    return f"PID {owner.get('pid')} on host {owner.get('host')} (since {owner.get('started')})"


class OutDirLock:
    """An exclusive lock on an output directory; ``acquire()``/``release()`` or a ``with`` block.

    ``log`` receives the note when a stale lock of a dead process is taken over."""

    def __init__(self, out_dir: str, log=print):
        self.out_dir = out_dir
        self.path = os.path.join(out_dir, LOCK_NAME)
        self.log = log
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "OutDirLock":
        if self._fd is not None:
            return self
        os.makedirs(self.out_dir, exist_ok=True)
        previous = _read_owner(self.path) if os.path.exists(self.path) else None
        fd = self._lock_flock() if fcntl is not None else self._lock_excl()
        if previous and previous.get("pid") != os.getpid():
            self.log(f"note: took over the lock of a run that is no longer running ({_describe(previous)}) "
                     f"in {self.out_dir}")
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        self._fd = fd
        return self

    def _busy(self) -> OutDirBusy:
        return OutDirBusy(f"{self.out_dir} is in use by another run: {_describe(_read_owner(self.path))}; "
                          "wait for it to finish (or stop it), or choose another --out")

    def _lock_flock(self) -> int:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise self._busy() from None
            try:   # the holder before us may have removed the file between our open and our lock
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)

    def _lock_excl(self) -> int:
        while True:
            try:
                return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                owner = _read_owner(self.path)
                if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int) \
                        and not _pid_alive(owner["pid"]):
                    os.unlink(self.path)
                    continue
                raise self._busy() from None

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self._fd)   # closing drops the flock
        self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
