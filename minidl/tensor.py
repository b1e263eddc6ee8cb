"""Tensor: an array, the gradient it receives, and the Function that made it.

``backward()`` walks the graph of Functions in reverse topological order with an
explicit stack (no recursion, so a chain of thousands of operations works),
calls each Function's ``backward`` once, sums the gradients of tensors used
more than once, and accumulates into ``.grad`` of the leaves (tensors made by
the user with ``requires_grad=True``), across calls, as PyTorch does.
"""
from __future__ import annotations

import numpy as np

from . import backend
from .kernels import elementwise
from .random import generator

float32 = np.float32
float64 = np.float64
_FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


class Size(tuple):
    """A shape, as torch.Size: a tuple of ints (what ``x.size()`` returns)."""

    def numel(self) -> int:
        return int(np.prod(self, dtype=np.int64))

    def __repr__(self):
        return f"minidl.Size({list(self)})"


class Tensor:
    _hooks = ()  # functions called with this tensor's gradient during backward (register_hook)
    # == and friends return Tensors (ops/compare.py), which would make Python drop the default
    # hash; the engine, optimizers and hooks key dicts and sets by tensor, so keep identity hashing.
    __hash__ = object.__hash__
    # numpy_array * tensor: NumPy steps aside, so Tensor.__rmul__ answers (a Tensor, with a
    # gradient) instead of an object array of one-element tensors
    __array_ufunc__ = None
    _post_accumulate_hooks = ()  # functions called with this leaf once backward updated its .grad

    def __init__(self, data, requires_grad: bool = False):
        if isinstance(data, np.generic):  # NumPy reductions return scalars: keep a (0-d) array
            data = np.asarray(data)
        self.data = data              # numpy.ndarray or cupy.ndarray
        self.grad = None              # Tensor, filled by backward (leaves only)
        self.grad_fn = None           # the Function that produced this tensor, None for leaves
        self.requires_grad = bool(requires_grad)
        # [count] of in-place writes, shared by tensors that view the same memory; a Function
        # records its inputs' counts, and backward refuses to run on data changed since (ops/inplace.py)
        self._version = [0]
        if self.requires_grad and self.data.dtype not in _FLOAT_DTYPES:
            raise TypeError(f"only floating-point tensors can require grad, got dtype {self.data.dtype}")

    # ------------------------------------------------------------------ facts
    shape = property(lambda self: tuple(self.data.shape))
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    device = property(lambda self: backend.device(backend.device_of(self.data)))
    is_leaf = property(lambda self: self.grad_fn is None)

    def size(self, dim: int | None = None):
        """The shape (a minidl.Size), or its length along ``dim``, as torch.Tensor.size.
        The element count is ``numel()``."""
        if dim is None:
            return Size(self.data.shape)
        if not -self.ndim <= dim < self.ndim:
            raise IndexError(f"size(): dim {dim} is out of range for a tensor of shape {self.shape}")
        return int(self.data.shape[dim])

    def numel(self) -> int:
        return int(self.data.size)

    def dim(self) -> int:
        return self.data.ndim

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __bool__(self):
        if self.numel() != 1:
            raise RuntimeError(f"Boolean value of Tensor with more than one value is ambiguous "
                               f"(shape {self.shape}); use .any() or .all()")
        return bool(backend.asnumpy(self.data).reshape(()))

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self.dtype.kind not in "iu" or self.numel() != 1:
            raise TypeError(f"only one-element integer tensors can be used as an index, "
                            f"got dtype {self.dtype} and shape {self.shape}")
        return int(self.item())

    def __repr__(self):
        grad = f", grad_fn={self.grad_fn!r}" if self.grad_fn else (", requires_grad=True" if self.requires_grad else "")
        dev = ", device='gpu'" if self.device == "gpu" else ""
        return f"tensor({backend.asnumpy(self.data)!r}{dev}{grad})"

    # ------------------------------------------------------------ conversion
    def numpy(self) -> np.ndarray:
        """A host NumPy copy of the data."""
        return np.array(backend.asnumpy(self.data), copy=True)

    def __array__(self, dtype=None, copy=None):
        """np.asarray(tensor), as torch: the host data (a copy for a GPU tensor)."""
        host = backend.asnumpy(self.data)
        return host.astype(dtype, copy=bool(copy)) if dtype is not None else (host.copy() if copy else host)

    def item(self):
        if self.numel() != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return backend.asnumpy(self.data).reshape(()).item()

    def tolist(self):
        """The values as (nested) Python lists of Python numbers."""
        return backend.asnumpy(self.data).tolist()

    def detach(self) -> "Tensor":
        """The same data, cut from the graph (in-place writes to either show in both)."""
        out = Tensor(self.data, requires_grad=False)
        out._version = self._version
        return out

    def to(self, *args, **kwargs) -> "Tensor":
        """As torch.Tensor.to: ``to(device)``, ``to(dtype)``, ``to(device, dtype)``, ``to(other)``
        (other's device and dtype), or keywords device=, dtype=. Itself when nothing changes;
        otherwise a differentiable copy (between floating dtypes; integer results need no grad)."""
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        kwargs.pop("non_blocking", None)
        kwargs.pop("copy", None)
        if kwargs:
            raise TypeError(f"to(): unexpected keyword arguments {sorted(kwargs)}")
        for arg in args:
            if isinstance(arg, Tensor):
                device, dtype = arg.device, arg.dtype
            elif _is_dtype(arg):
                dtype = arg
            elif isinstance(arg, (str, backend.device)):
                device = arg
            else:
                raise TypeError(f"to(): expected a device, a dtype or a tensor, got {arg!r}")
        out = self
        if dtype is not None and np.dtype(dtype) != self.dtype:
            from .ops.math import cast  # noqa: PLC0415 - cycle: minidl/ops imports this module
            out = cast(out, dtype)
        if device is not None:
            device = backend.check_device(device)
            if device != out.device:
                from .ops.basic import ToDevice  # noqa: PLC0415 - cycle: minidl/ops imports this module
                out = ToDevice.apply(out, device=device)
        return out

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self, device=None) -> "Tensor":
        """A copy on the GPU (an error saying why when there is none)."""
        return self.to("gpu" if device is None else (f"cuda:{device}" if isinstance(device, int) else device))

    def contiguous(self) -> "Tensor":
        """Itself: minidl's operations accept any memory layout."""
        return self

    def astype(self, dtype) -> "Tensor":
        return Tensor(self.data.astype(dtype), requires_grad=False)

    def requires_grad_(self, mode: bool = True) -> "Tensor":
        self.requires_grad = bool(mode)
        return self

    def zero_grad(self):
        self.grad = None

    def register_hook(self, hook):
        """Call ``hook(grad)`` with this tensor's gradient during backward, once it is complete;
        a returned Tensor replaces the gradient (as torch.Tensor.register_hook). Returns a handle
        whose ``remove()`` unregisters it."""
        if not self.requires_grad:
            raise RuntimeError("register_hook on a tensor that does not require grad")
        self._hooks = self._hooks + (hook,)
        return _HookHandle(self, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(tensor)`` on this leaf right after backward has accumulated into its ``.grad``
        (as torch's): DistributedDataParallel starts reducing a gradient from here. Returns a handle
        whose ``remove()`` unregisters it."""
        if not self.requires_grad or not self.is_leaf:
            raise RuntimeError("register_post_accumulate_grad_hook needs a leaf tensor that requires grad")
        self._post_accumulate_hooks = self._post_accumulate_hooks + (hook,)
        return _HookHandle(self, hook, "_post_accumulate_hooks")

    # --------------------------------------------------------------- backward
    def backward(self, grad=None, retain_graph: bool = False):
        """Compute d(self)/d(leaf) for every leaf that requires grad, into leaf.grad.

        ``grad`` is d(loss)/d(self); it may be omitted only when self has one element.
        Unless ``retain_graph``, each Function drops what it saved once used, so a
        second backward through the same graph raises (as in PyTorch).
        """
        if not self.requires_grad:
            raise RuntimeError("backward() called on a tensor that does not require grad "
                               "(no input had requires_grad=True, or it was made under no_grad())")
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.numel() != 1:
                raise RuntimeError(f"backward() without a gradient needs a scalar (one-element) tensor, "
                                   f"got shape {self.shape}; pass grad= of that shape")
            grad = xp.ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else xp.asarray(grad, dtype=self.dtype)
            if tuple(grad.shape) != self.shape:
                raise ValueError(f"backward(): grad has shape {tuple(grad.shape)}, tensor has shape {self.shape}")

        grads = {id(self): grad}
        # memory already behind some .grad or the caller's array (ids of the owning bases): a leaf
        # handed such an array gets its own copy, so x.grad.zero_() cannot change another leaf's
        # gradient; fresh arrays (the usual case: a backward's result) are kept without a copy
        owned = {id(_owner(grad))}
        for node in _topological_order(self):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            for hook in node._hooks:
                replaced = hook(Tensor(g))
                if replaced is not None:
                    g = replaced.data if isinstance(replaced, Tensor) else replaced
            fn = node.grad_fn
            if fn is None:  # a leaf: accumulate (into a new array; the old .grad is not written)
                if node.grad is not None:
                    node.grad = Tensor(elementwise.add(node.grad.data, g.astype(node.dtype, copy=False)))
                else:
                    shared = retain_graph or id(_owner(g)) in owned   # retained: a Function may hold g
                    g = g.astype(node.dtype, copy=shared)
                    owned.add(id(_owner(g)))
                    node.grad = Tensor(g)
                for hook in node._post_accumulate_hooks:
                    hook(node)
                continue
            if getattr(fn, "released", False):
                raise RuntimeError(f"backward through {fn!r} a second time: its saved arrays were freed; "
                                   "call backward(retain_graph=True) the first time")
            _check_versions(fn, node)
            input_grads = fn.backward(g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            if len(input_grads) != len(fn.inputs):
                raise RuntimeError(f"{fn!r}.backward returned {len(input_grads)} gradients "
                                   f"for {len(fn.inputs)} inputs")
            for inp, ig in zip(fn.inputs, input_grads):
                if ig is None or not inp.requires_grad:
                    continue
                if tuple(ig.shape) != inp.shape:
                    raise RuntimeError(f"{fn!r}.backward returned a gradient of shape {tuple(ig.shape)} "
                                       f"for an input of shape {inp.shape}")
                key = id(inp)
                grads[key] = ig if key not in grads else elementwise.add(grads[key], ig)
            if not retain_graph:
                fn.release()


def _owner(array):
    """The object that owns an array's memory (its base for a view), for telling shared gradients."""
    return array if getattr(array, "base", None) is None else array.base


def _check_versions(fn, output):
    """Refuse to differentiate through a Function whose inputs or output were written in place
    after it ran (the arrays it saved no longer hold the values its gradient formula needs;
    exp, for one, keeps its output), as PyTorch does."""
    recorded = tuple(zip(fn.inputs, getattr(fn, "input_versions", ())))
    if hasattr(fn, "output_version"):
        recorded += ((output, fn.output_version),)
    for i, (t, seen) in enumerate(recorded):
        if t._version[0] != seen:
            what = f"input {i}" if i < len(fn.inputs) else "the output"
            raise RuntimeError(f"one of the variables needed for gradient computation has been modified "
                               f"by an inplace operation: {what} of {fn!r} (shape {t.shape}) is at "
                               f"version {t._version[0]}, expected version {seen}. Make the change out "
                               "of place (x = x + 1) or after backward()")


def _is_dtype(value) -> bool:
    if isinstance(value, np.dtype):
        return True
    return isinstance(value, type) and issubclass(value, np.generic)


class _HookHandle:
    def __init__(self, tensor, hook, attribute="_hooks"):
        self.tensor, self.hook, self.attribute = tensor, hook, attribute

    def remove(self):
        hooks = getattr(self.tensor, self.attribute)
        setattr(self.tensor, self.attribute, tuple(h for h in hooks if h is not self.hook))


def _topological_order(root: Tensor) -> list:
    """Tensors reachable from root that require grad, each after every tensor that uses it."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if node.grad_fn is not None:
            for inp in node.grad_fn.inputs:
                if inp.requires_grad and id(inp) not in visited:
                    stack.append((inp, False))
    order.reverse()  # post-order reversed: outputs first, leaves last
    return order


def tensor(data, requires_grad: bool = False, device="cpu", dtype=None) -> Tensor:
    """Make a tensor (a copy), as torch.tensor: Python floats become float32, arrays keep their dtype."""
    device = backend.check_device(device)
    if isinstance(data, Tensor):
        data = data.data
    if not hasattr(data, "dtype"):
        data = np.asarray(data)
        if data.dtype.kind == "f":
            data = data.astype(np.float32)
    array = backend.to_device(data, device).astype(dtype or data.dtype, copy=True)
    return Tensor(array, requires_grad=requires_grad)


def as_tensor(value, like: Tensor | None = None) -> Tensor:
    """A Tensor for value without copying: itself if it is one; otherwise a constant on ``like``'s
    device, with ``like``'s dtype for Python scalars (so ``x * 2`` keeps float64 or float32)."""
    if isinstance(value, Tensor):
        return value
    if like is None:
        return tensor(value)
    if np.isscalar(value):
        dtype = like.dtype
        if dtype.kind in "biu" and isinstance(value, float):
            dtype = np.float32      # int tensor * 2.5 is float (as torch), not a truncated 2
        elif dtype.kind == "b" and isinstance(value, int) and not isinstance(value, bool):
            dtype = np.int64
        return Tensor(backend.get_array_module(like.data).asarray(value, dtype=dtype))
    if not hasattr(value, "dtype"):
        value = np.asarray(value, dtype=like.dtype if np.asarray(value).dtype.kind == "f" else None)
    return Tensor(backend.to_device(value, like.device))


def zeros(*shape, dtype=np.float32, requires_grad=False, device="cpu") -> Tensor:
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    xp = backend.cupy_module() if backend.check_device(device) == "gpu" else np
    return Tensor(xp.zeros(shape, dtype=dtype or np.float32), requires_grad=requires_grad)


def ones(*shape, dtype=np.float32, requires_grad=False, device="cpu") -> Tensor:
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    xp = backend.cupy_module() if backend.check_device(device) == "gpu" else np
    return Tensor(xp.ones(shape, dtype=dtype or np.float32), requires_grad=requires_grad)


def randn(*shape, dtype=np.float32, requires_grad=False, device="cpu") -> Tensor:
    """Standard normal samples from minidl's seeded generator (see md.manual_seed)."""
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    data = generator("init").standard_normal(shape).astype(dtype or np.float32)
    return tensor(data, requires_grad=requires_grad, device=device)

