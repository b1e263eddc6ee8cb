"""DistributedDataParallel: the same model on every rank, gradients averaged over ranks during backward.

    dist.init_process_group(backend="mpi")
    model = nn.parallel.DistributedDataParallel(model)   # rank 0's parameters and buffers copied to all
    loss = F.cross_entropy(model(x_local), y_local)      # each rank: its own share of the batch
    loss.backward()                                      # returns with the gradients averaged over ranks
    optimizer.step()                                     # identical update on every rank

Buckets. The parameters, in reverse registration order (roughly the order backward finishes
their gradients: the last layer first), are packed into flat buckets of about ``bucket_cap_mb``.
A post-accumulate hook on each parameter copies its gradient into its bucket once backward has
finished it; the moment a bucket is full its all-reduce starts, non-blocking, and backward goes
on computing the earlier layers' gradients while the bucket travels. When the last bucket has
started, backward waits for all of them and writes grad = bucket sum / world size back, so
``loss.backward()`` returns with averaged gradients, as in PyTorch. One message per bucket,
not per parameter: a handful of all-reduces per step instead of sixteen small ones.

MPICH moves a non-blocking collective forward only inside MPI calls, so every hook also polls
the buckets in flight: each layer's gradient gives the earlier buckets a push.

Every parameter must get a gradient in every backward (as PyTorch's default): a parameter that
did not take part in the forward never fills its bucket, and the next forward raises naming it.
Pass ``find_unused_parameters=True`` to find such parameters at each forward (a walk of the
graph) and count them as ready with a zero gradient.
"""
from __future__ import annotations

import contextlib

import numpy as np

from .. import backend
from .. import distributed as dist
from ..grad_mode import is_grad_enabled
from ..tensor import Tensor
from .module import Module

__all__ = ["DistributedDataParallel"]


class _Bucket:
    """Parameters whose gradients travel together in one flat buffer (one dtype, one device)."""

    def __init__(self, params, xp):
        self.params = params
        self.offsets = np.cumsum([0] + [p.numel() for p in params]).tolist()
        self.flat = xp.zeros(self.offsets[-1], dtype=params[0].dtype)
        self.ready = 0       # parameters whose gradient is in ``flat`` this iteration
        self.work = None     # the all-reduce in flight


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training over the initialised process group (as torch's).

    ``broadcast_buffers``: copy rank 0's buffers (BatchNorm's running statistics) to every rank
    before each training forward. ``state_dict()`` keys carry the ``module.`` prefix, as
    PyTorch's; save ``model.module.state_dict()`` for a checkpoint that a plain model loads."""

    def __init__(self, module, device_ids=None, bucket_cap_mb: float = 4.0, broadcast_buffers: bool = True,
                 find_unused_parameters: bool = False):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: module must be an nn.Module, got {type(module).__name__}")
        if not dist.is_initialized():
            raise RuntimeError("DistributedDataParallel: the process group is not initialised; call "
                               "minidl.distributed.init_process_group(backend='mpi') first")
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be positive, got {bucket_cap_mb!r}")
        self.module = module
        object.__setattr__(self, "broadcast_buffers", bool(broadcast_buffers))
        object.__setattr__(self, "find_unused_parameters", bool(find_unused_parameters))
        object.__setattr__(self, "world_size", dist.get_world_size())
        object.__setattr__(self, "_sync", True)
        # rank 0's weights everywhere (as PyTorch does at wrap time)
        for _, p in module.named_parameters():
            dist.broadcast(p, src=0)
        self._broadcast_buffers()
        params = [p for p in module.parameters() if p.requires_grad]
        buckets, current, size, cap = [], [], 0, bucket_cap_mb * 2**20
        for p in reversed(params):
            if current and (size + p.data.nbytes > cap or p.dtype != current[0].dtype
                            or p.device != current[0].device):
                buckets.append(current)
                current, size = [], 0
            current.append(p)
            size += p.data.nbytes
        if current:
            buckets.append(current)
        object.__setattr__(self, "_buckets", [_Bucket(b, backend.get_array_module(b[0].data)) for b in buckets])
        where = {}
        for bucket in self._buckets:
            for i, p in enumerate(bucket.params):
                where[id(p)] = (bucket, i)
        object.__setattr__(self, "_where", where)
        object.__setattr__(self, "_seen", set())   # ids of parameters whose gradient is in a bucket
        object.__setattr__(self, "_handles", [p.register_post_accumulate_grad_hook(self._grad_ready)
                                              for p in params])

    # ------------------------------------------------------------------------------ forward
    def forward(self, *args, **kwargs):
        self._check_previous_iteration()
        if self.training and is_grad_enabled() and self.broadcast_buffers:
            self._broadcast_buffers()
        output = self.module(*args, **kwargs)
        if self.find_unused_parameters and self._sync and is_grad_enabled():
            self._mark_unused(output)
        return output

    def _broadcast_buffers(self):
        if self.world_size == 1:
            return
        for _, b in self.module.named_buffers():
            dist.broadcast(b, src=0)

    def _check_previous_iteration(self):
        """A backward that left a bucket half full means a parameter got no gradient: say which."""
        pending = [b for b in self._buckets if b.ready or b.work is not None]
        if not pending:
            return
        names = {id(p): n for n, p in self.module.named_parameters()}
        missing = [names[id(p)] for b in pending for p in b.params if id(p) not in self._seen]
        self._reset()
        raise RuntimeError("DistributedDataParallel: the previous backward did not produce gradients for "
                           f"{missing}, so their buckets were never reduced (the optimizer step used un-averaged "
                           "gradients). Use every parameter in the loss, set requires_grad=False on the unused "
                           "ones, or wrap with find_unused_parameters=True")

    def _reset(self):
        for bucket in self._buckets:
            bucket.ready, bucket.work = 0, None
        self._seen.clear()

    def _mark_unused(self, output):
        """Count parameters that the output does not depend on as ready with a zero gradient."""
        outputs = output if isinstance(output, (tuple, list)) else (output,)
        reachable, stack = set(), [t for t in outputs if isinstance(t, Tensor)]
        while stack:
            t = stack.pop()
            if id(t) in reachable:
                continue
            reachable.add(id(t))
            if t.grad_fn is not None:
                stack.extend(i for i in t.grad_fn.inputs if i.requires_grad)
        for bucket in self._buckets:
            for p in bucket.params:
                if id(p) not in reachable:
                    self._fill(p, None)

    # ----------------------------------------------------------------------------- backward
    def _grad_ready(self, p):
        """Post-accumulate hook: p.grad is final for this backward."""
        if not self._sync:
            return
        if id(p) in self._seen:
            raise RuntimeError("DistributedDataParallel: a parameter received a gradient twice in one iteration "
                               "(a second backward without a forward in between); reduce once per forward")
        self._fill(p, p.grad.data)
        for bucket in self._buckets:         # push the buckets in flight (MPI progresses inside MPI calls)
            if bucket.work is not None:
                bucket.work.is_completed()

    def _fill(self, p, grad):
        bucket, i = self._where[id(p)]
        lo, hi = bucket.offsets[i], bucket.offsets[i + 1]
        if grad is None:
            bucket.flat[lo:hi] = 0
        else:
            bucket.flat[lo:hi] = grad.reshape(-1)
        self._seen.add(id(p))
        bucket.ready += 1
        if bucket.ready == len(bucket.params):
            bucket.work = dist.all_reduce(bucket.flat, dist.ReduceOp.SUM, async_op=True)
            if all(b.work is not None for b in self._buckets):
                self._finish()

    def _finish(self):
        """Wait for every bucket and write the averaged gradients back into ``.grad``."""
        scale = 1.0 / self.world_size
        for bucket in self._buckets:
            bucket.work.wait()
            for i, p in enumerate(bucket.params):
                lo, hi = bucket.offsets[i], bucket.offsets[i + 1]
                # a new array (not a view of the bucket), so a kept reference to a grad is never overwritten
                p.grad = Tensor((bucket.flat[lo:hi] * scale).reshape(p.shape).astype(p.dtype, copy=False))
        self._reset()

    @contextlib.contextmanager
    def no_sync(self):
        """Inside this block backward only accumulates local gradients (no communication), as torch's;
        the first backward after it reduces the accumulated sum."""
        object.__setattr__(self, "_sync", False)
        try:
            yield
        finally:
            object.__setattr__(self, "_sync", True)

    def extra_repr(self) -> str:
        sizes = ", ".join(f"{b.flat.nbytes / 2**20:.2f}" for b in self._buckets)
        return f"world_size={self.world_size}, buckets MB=[{sizes}]"
