"""Process groups and collectives across processes, as torch.distributed (MPI through mpi4py; NCCL on GPUs).

    mpiexec -n 2 python train.py            # each process: rank 0 or 1, world size 2

    import minidl.distributed as dist
    dist.init_process_group(backend="mpi")  # rank and world size come from the launcher
    dist.all_reduce(t, op=dist.ReduceOp.SUM)   # in place on a Tensor: every rank gets the sum
    dist.broadcast(t, src=0)                # every rank gets rank 0's values

Backends. ``"mpi"`` works on any array: CPU arrays go straight to MPI, GPU (CuPy) arrays through a
host copy (the MPICH wheel is not CUDA-aware). ``"nccl"`` (CuPy's ``cupy.cuda.nccl``, one GPU per
process, bootstrapped over MPI) reduces GPU arrays on the GPUs and still sends CPU arrays through
MPI. ``backend=None`` picks ``"nccl"`` when CuPy sees at least as many GPUs as this machine has
ranks, else ``"mpi"``.

Never hang forever. Every collective is started non-blocking and then polled against a deadline
(``timeout`` of init_process_group, default 300 s or the environment variable
MINIDL_DIST_TIMEOUT). A rank that died or hangs makes the others print which collective timed
out and abort the whole job (MPI_Abort), instead of waiting forever. (mpiexec itself already
stops every rank when one of them is killed; the deadline covers a rank that hangs, or a
launcher that does not.) The default is generous because ranks legitimately drift apart by
seconds: a cold Numba cache compiles kernels on the first step, and rank 0 alone writes
checkpoints and figures.
"""
from __future__ import annotations

import datetime
import importlib.util
import json
import os
import sys
import time

import numpy as np

from . import backend
from .tensor import Tensor

__all__ = ["ReduceOp", "Work", "DistributedUnavailable", "init_process_group", "is_initialized", "is_available",
           "get_rank", "get_world_size", "barrier", "all_reduce", "broadcast", "destroy_process_group",
           "launcher_world_size", "World", "all_gather_into_tensor", "reduce_scatter_tensor"]

DEFAULT_TIMEOUT = 300.0
INSTALL_HINT = "pip install -e '.[dist]'  (or: pip install mpi4py mpich)"


class DistributedUnavailable(RuntimeError):
    """mpi4py, an MPI library or (for NCCL) CuPy is missing; the message says what to install."""


class ReduceOp:
    """The reductions of all_reduce. AVG is the SUM divided by the world size."""
    SUM = "sum"
    AVG = "avg"
    MAX = "max"
    MIN = "min"
    PRODUCT = "product"


_OPS = (ReduceOp.SUM, ReduceOp.AVG, ReduceOp.MAX, ReduceOp.MIN, ReduceOp.PRODUCT)
_group = None   # the process group made by init_process_group


def _mpi():
    """The mpi4py.MPI module (importing it initialises MPI), or a DistributedUnavailable saying what to install."""
    try:
        from mpi4py import MPI  # noqa: PLC0415 - optional dependency, loaded only when used
    except ImportError as exc:
        raise DistributedUnavailable(f"minidl.distributed: the MPI backend needs mpi4py and an MPI library, "
                                     f"which are not installed ({exc}); install them with {INSTALL_HINT}") from exc
    except RuntimeError as exc:   # mpi4py present, but no MPI shared library found
        raise DistributedUnavailable(f"minidl.distributed: mpi4py found no MPI library ({exc}); install one "
                                     f"with {INSTALL_HINT}") from exc
    return MPI


def is_available() -> bool:
    """Whether mpi4py can be imported (without initialising MPI)."""
    return importlib.util.find_spec("mpi4py") is not None


def launcher_world_size() -> int:
    """The number of ranks an MPI launcher started (MPICH/Hydra, Open MPI, PMIx), 1 when there is none.

    Read from the environment, so deciding whether to go distributed does not initialise MPI."""
    for key in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        value = os.environ.get(key)
        if value and value.isdigit():
            return int(value)
    return 1


# ------------------------------------------------------------------------------- the work handle
class Work:
    """A collective in flight (as torch's async_op=True handle): ``is_completed()`` polls it,
    ``wait()`` blocks until it is done (or the group's timeout aborts the job) and runs ``finish``
    (the copy back of a host buffer, the division of AVG)."""

    def __init__(self, group, what, test, finish=None):
        self._group, self._what, self._test, self._finish = group, what, test, finish
        self._done = False

    def is_completed(self) -> bool:
        """Poll once (this also drives MPI's progress engine); True once the collective has finished."""
        if not self._done and self._test():
            self._done = True
            if self._finish is not None:
                self._finish()
        return self._done

    def wait(self) -> bool:
        if self.is_completed():
            return True
        deadline = time.monotonic() + self._group.timeout
        pause = 1e-6
        while not self.is_completed():
            if time.monotonic() > deadline:
                self._group.abort(f"{self._what} did not complete within {self._group.timeout:g} s: another rank "
                                  "has stopped, crashed or hangs")
            time.sleep(pause)           # back off from a busy spin to at most 1 ms between polls
            pause = min(pause * 2, 1e-3)
        return True


def _finish(work, async_op):
    """The Work itself for async_op=True, else wait for it and return None (as torch)."""
    if async_op:
        return work
    work.wait()
    return None


# ---------------------------------------------------------------------------- process groups
class _MPIGroup:
    """COMM_WORLD (duplicated, so user MPI traffic cannot mix with ours), non-blocking collectives."""

    name = "mpi"

    def __init__(self, timeout):
        MPI = self.MPI = _mpi()
        self.comm = MPI.COMM_WORLD.Dup()
        self.rank, self.size, self.timeout = self.comm.Get_rank(), self.comm.Get_size(), timeout
        self._ops = {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.MAX: MPI.MAX,
                     ReduceOp.MIN: MPI.MIN, ReduceOp.PRODUCT: MPI.PROD}
        self.nccl = None

    def abort(self, message):
        sys.stdout.flush()
        print(f"minidl.distributed: rank {self.rank} of {self.size}: {message}; aborting all ranks", file=sys.stderr,
              flush=True)
        self.comm.Abort(1)

    def _host(self, array):
        """A C-contiguous NumPy buffer for ``array`` and a function that writes the result back."""
        if isinstance(array, np.ndarray) and array.flags.c_contiguous:
            return array, None
        host = np.ascontiguousarray(backend.asnumpy(array))

        def write_back():
            array[...] = backend.to_device(host, backend.device_of(array))
        return host, write_back

    def all_reduce(self, array, op, what="all_reduce"):
        host, write_back = self._host(array)
        request = self.comm.Iallreduce(self.MPI.IN_PLACE, host, op=self._ops[op])

        def finish():
            if op == ReduceOp.AVG:
                host[...] /= self.size   # MPI has no average: the sum, divided here
            if write_back is not None:
                write_back()
        return Work(self, what, request.Test, finish)

    def broadcast(self, array, src, what="broadcast"):
        host, write_back = self._host(array)
        request = self.comm.Ibcast(host, root=src)
        return Work(self, what, request.Test, write_back)

    def barrier(self, what="barrier"):
        return Work(self, what, self.comm.Ibarrier().Test)

    def all_gather(self, output, array, what="all_gather"):
        """output (world * n, ...) <- every rank's array (n, ...), rank-major (MPI_Iallgather)."""
        send, _ = self._host(array)
        recv, write_back = self._host(output)
        request = self.comm.Iallgather(send, recv)
        return Work(self, what, request.Test, write_back)

    def reduce_scatter(self, output, array, what="reduce_scatter"):
        """output (n, ...) <- the sum over ranks of rows [rank*n, (rank+1)*n) of array (MPI_Ireduce_scatter_block)."""
        send, _ = self._host(array)
        recv, write_back = self._host(output)
        request = self.comm.Ireduce_scatter_block(send, recv, op=self.MPI.SUM)
        return Work(self, what, request.Test, write_back)

    def destroy(self):
        self.comm.Free()


class _NCCL:
    """NCCL communicator over CuPy, one GPU per rank; the unique id travels over MPI.

    Untested in this project's suite (it needs two GPUs); each call is the same shape as the MPI one:
    enqueue on the current stream, record an event, and poll the event against the deadline."""

    def __init__(self, group):
        try:
            import cupy  # noqa: PLC0415 - optional dependency, loaded only when used
            from cupy.cuda import nccl  # noqa: PLC0415 - optional dependency, loaded only when used
        except ImportError as exc:
            raise DistributedUnavailable(f"minidl.distributed: backend 'nccl' needs CuPy with NCCL ({exc}); "
                                         "install cupy-cuda12x (pip install -e '.[gpu]') or use backend='mpi'") from exc
        self.cupy, self.nccl = cupy, nccl
        local = group.comm.Split_type(group.MPI.COMM_TYPE_SHARED)
        local_rank, local_size = local.Get_rank(), local.Get_size()
        local.Free()
        n_gpus = cupy.cuda.runtime.getDeviceCount()
        if n_gpus < local_size:
            raise DistributedUnavailable(f"minidl.distributed: backend 'nccl' needs one GPU per rank, but this "
                                         f"machine runs {local_size} ranks and has {n_gpus} GPU(s); use backend='mpi'")
        cupy.cuda.Device(local_rank).use()
        uid = group.comm.bcast(nccl.get_unique_id() if group.rank == 0 else None, root=0)
        self.comm = nccl.NcclCommunicator(group.size, uid, group.rank)
        self.dtypes = {np.dtype(np.float16): nccl.NCCL_FLOAT16, np.dtype(np.float32): nccl.NCCL_FLOAT32,
                       np.dtype(np.float64): nccl.NCCL_FLOAT64, np.dtype(np.int32): nccl.NCCL_INT32,
                       np.dtype(np.int64): nccl.NCCL_INT64}
        self.ops = {ReduceOp.SUM: nccl.NCCL_SUM, ReduceOp.AVG: nccl.NCCL_SUM, ReduceOp.MAX: nccl.NCCL_MAX,
                    ReduceOp.MIN: nccl.NCCL_MIN, ReduceOp.PRODUCT: nccl.NCCL_PROD}

    def _event_work(self, group, what, finish=None):
        event = self.cupy.cuda.Event(disable_timing=True)
        event.record()
        return Work(group, what, lambda: event.done, finish)

    def all_reduce(self, group, array, op, what):
        if not array.flags.c_contiguous or array.dtype not in self.dtypes:
            raise TypeError(f"minidl.distributed.all_reduce (nccl): needs a C-contiguous array of "
                            f"{sorted(str(d) for d in self.dtypes)}, got {array.dtype}")
        stream = self.cupy.cuda.get_current_stream().ptr
        self.comm.allReduce(array.data.ptr, array.data.ptr, array.size, self.dtypes[array.dtype], self.ops[op], stream)
        finish = (lambda: array.__itruediv__(group.size)) if op == ReduceOp.AVG else None
        return self._event_work(group, what, finish)

    def broadcast(self, group, array, src, what):
        stream = self.cupy.cuda.get_current_stream().ptr
        self.comm.bcast(array.data.ptr, array.size, self.dtypes[array.dtype], src, stream)
        return self._event_work(group, what)


# ------------------------------------------------------------------------------- the API
def init_process_group(backend: str | None = "mpi", timeout=None, world_size: int | None = None,
                       rank: int | None = None) -> None:
    """Join the process group the launcher started (``mpiexec -n N``); a plain ``python`` run is a world of 1.

    ``timeout`` (seconds or a datetime.timedelta): how long a collective may wait for the other
    ranks before the job is aborted. ``world_size``/``rank``, if given, are checked against the
    launcher's (MPI decides them; they cannot be chosen here)."""
    global _group
    if _group is not None:
        raise RuntimeError("init_process_group: the process group is already initialised "
                           "(call destroy_process_group first)")
    if backend not in (None, "mpi", "nccl"):
        raise ValueError(f"init_process_group: backend must be 'mpi', 'nccl' or None, got {backend!r}")
    if timeout is None:
        timeout = float(os.environ.get("MINIDL_DIST_TIMEOUT", DEFAULT_TIMEOUT))
    if isinstance(timeout, datetime.timedelta):
        timeout = timeout.total_seconds()
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"init_process_group: timeout must be a positive number of seconds, got {timeout!r}")
    group = _MPIGroup(float(timeout))
    for name, given, actual in (("world_size", world_size, group.size), ("rank", rank, group.rank)):
        if given is not None and given != actual:
            raise ValueError(f"init_process_group: {name}={given} was given, but the MPI launcher started this "
                             f"process with {name}={actual}; launch with mpiexec -n N instead")
    if backend == "nccl" or (backend is None and _nccl_possible(group)):
        group.nccl = _NCCL(group)
        group.name = "nccl"
    _group = group


def _nccl_possible(group) -> bool:
    if not backend.gpu_available():
        return False
    try:
        return backend.cupy_module().cuda.runtime.getDeviceCount() >= max(group.size, 2)
    except Exception:  # noqa: BLE001  (no usable GPU runtime: stay on MPI)
        return False


def is_initialized() -> bool:
    return _group is not None


def _require(what):
    if _group is None:
        raise RuntimeError(f"minidl.distributed.{what}: the process group is not initialised; "
                           "call dist.init_process_group(backend='mpi') first")
    return _group


def get_rank() -> int:
    return _require("get_rank").rank


def get_world_size() -> int:
    return _require("get_world_size").size


def get_backend() -> str:
    return _require("get_backend").name


def destroy_process_group() -> None:
    global _group
    if _group is not None:
        _group.destroy()
        _group = None


def _array_of(tensor, what):
    if isinstance(tensor, Tensor):
        return tensor.data
    if isinstance(tensor, np.ndarray) or backend.device_of(tensor) == "gpu":
        return tensor
    raise TypeError(f"minidl.distributed.{what}: expected a Tensor or an array, got {type(tensor).__name__}")


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Reduce ``tensor`` over all ranks, in place: afterwards every rank holds the result.

    With ``async_op=True`` returns a Work whose ``wait()`` must be called before the tensor is read."""
    g = _require("all_reduce")
    if op not in _OPS:
        raise ValueError(f"all_reduce: op must be one of dist.ReduceOp's {_OPS}, got {op!r}")
    array = _array_of(tensor, "all_reduce")
    if g.nccl is not None and backend.device_of(array) == "gpu":
        work = g.nccl.all_reduce(g, array, op, "all_reduce")
    else:
        work = g.all_reduce(array, op)
    return _finish(work, async_op)


def broadcast(tensor, src: int = 0, group=None, async_op: bool = False):
    """Copy rank ``src``'s ``tensor`` into every rank's, in place."""
    g = _require("broadcast")
    if isinstance(src, bool) or not isinstance(src, (int, np.integer)) or not 0 <= src < g.size:
        raise ValueError(f"broadcast: src must be a rank in [0, {g.size}), got {src!r}")
    array = _array_of(tensor, "broadcast")
    if g.nccl is not None and backend.device_of(array) == "gpu":
        work = g.nccl.broadcast(g, array, int(src), "broadcast")
    else:
        work = g.broadcast(array, int(src))
    return _finish(work, async_op)


def _gather_check(output, input, what, rows):
    """The arrays of all_gather_into_tensor / reduce_scatter_tensor, after checking their shapes."""
    g = _require(what)
    out, arr = _array_of(output, what), _array_of(input, what)
    big, small = (out, arr) if rows == "output" else (arr, out)
    if out.dtype != arr.dtype or big.ndim == 0 or big.shape != (small.shape[0] * g.size, *small.shape[1:]):
        raise ValueError(f"{what}: on {g.size} ranks the {rows} must have shape (world_size * n, ...) = "
                         f"({g.size} * {small.shape[0] if small.ndim else '?'}, ...) and the same dtype; got "
                         f"output {tuple(out.shape)} {out.dtype}, input {tuple(arr.shape)} {arr.dtype}")
    return g, out, arr


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op: bool = False):
    """Every rank's ``input_tensor`` (n, ...) into ``output_tensor`` (world_size * n, ...), rank r's at rows
    [r*n, (r+1)*n), on every rank (as torch's). Travels through MPI (a host copy for GPU arrays)."""
    g, out, arr = _gather_check(output_tensor, input_tensor, "all_gather_into_tensor", "output")
    return _finish(g.all_gather(out, arr, "all_gather_into_tensor"), async_op)


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """Rank r's ``output`` (n, ...) = the sum over ranks of their ``input`` rows [r*n, (r+1)*n) (as torch's;
    only SUM). Travels through MPI (a host copy for GPU arrays)."""
    if op != ReduceOp.SUM:
        raise ValueError(f"reduce_scatter_tensor: only op=dist.ReduceOp.SUM is supported, got {op!r}")
    g, out, arr = _gather_check(output, input, "reduce_scatter_tensor", "input")
    return _finish(g.reduce_scatter(out, arr, "reduce_scatter_tensor"), async_op)


def barrier(group=None, async_op: bool = False):
    """Wait until every rank has reached this call."""
    work = _require("barrier").barrier()
    return _finish(work, async_op)


def broadcast_object(obj, src: int = 0):
    """Rank ``src``'s JSON-able ``obj`` on every rank (JSON, not pickle, goes over the wire)."""
    g = _require("broadcast_object")
    payload = np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8) if g.rank == src else None
    size = np.array([len(payload) if payload is not None else 0], dtype=np.int64)
    g.broadcast(size, src, "broadcast_object (size)").wait()
    buffer = payload.copy() if payload is not None else np.empty(int(size[0]), dtype=np.uint8)
    g.broadcast(buffer, src, "broadcast_object").wait()
    return json.loads(buffer.tobytes().decode())


# ----------------------------------------------------------------- what a training loop needs
class World:
    """The process group as a training loop sees it; a world of one (no MPI at all) when not initialised.

    ``rank``, ``size``, ``main`` (rank 0: the one that writes files); ``sum`` and ``max`` of a small
    NumPy array over ranks; ``rank_rng_state`` maps rank 0's RNG state to this rank's (same counters,
    a seed of its own, so dropout masks differ between ranks but resume bit-identically);
    ``unwrap(model)``: the plain module inside a DistributedDataParallel.

    Data parallel (this class): every rank holds the whole model and its own share of each batch, so
    ``shards_data`` is True (a loop sums its counts over ranks and shards the test set) and a
    checkpoint holds rank 0's own state. A model-parallel world (alexnet.split.SplitWorld) overrides
    ``shards_data`` (every rank sees the whole batch and computes the same loss) and the three
    checkpoint methods (each rank holds only its part of the model)."""

    shards_data = True

    @property
    def size(self) -> int:
        return _group.size if _group is not None else 1

    @property
    def rank(self) -> int:
        return _group.rank if _group is not None else 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def _reduce(self, values, op, what):
        array = np.array(values, dtype=np.float64 if np.asarray(values).dtype.kind == "f" else np.int64)
        if self.size > 1:
            _group.all_reduce(array, op, what).wait()
        return array

    def sum(self, values, what="sum over ranks"):
        return self._reduce(values, ReduceOp.SUM, what)

    def max(self, values, what="max over ranks"):
        return self._reduce(values, ReduceOp.MAX, what)

    def rank_rng_state(self, state: dict) -> dict:
        if self.rank == 0:
            return state
        seed = int(np.random.SeedSequence([int(state["seed"]), self.rank]).generate_state(1, np.uint64)[0])
        return {**state, "seed": seed}

    def checkpoint_state(self, model, optimizer) -> tuple:
        """(model state, optimizer state) a checkpoint holds; every rank calls it, rank 0 writes the result
        (data parallel: the other ranks hold the same weights and write nothing, so they copy nothing)."""
        if not self.main:
            return None, None
        return model.state_dict(), optimizer.state_dict()

    def checkpoint_shapes(self, model) -> dict:
        """{name: shape} of the model state a checkpoint of ``model`` holds."""
        return {name: tuple(value.shape) for name, value in model.state_dict().items()}

    def local_checkpoint(self, model, ckpt):
        """This rank's share of a loaded checkpoint (minidl.train.checkpoint.Checkpoint): all of it here."""
        return ckpt

    @staticmethod
    def unwrap(model):
        from .nn.parallel import DistributedDataParallel  # noqa: PLC0415 - cycle: minidl/nn/parallel.py imports this module
        return model.module if isinstance(model, DistributedDataParallel) else model
