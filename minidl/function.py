"""Function: one differentiable operation, a forward/backward pair on raw arrays.

To add an operation, subclass Function::

    class Square(Function):
        def forward(self, x):            # arrays in (NumPy or CuPy), one array out
            self.x = x                   # keep what backward needs on self
            return x * x
        def backward(self, grad):        # dL/dy in, one dL/dinput per input out
            return 2 * self.x * grad

    y = Square.apply(x)                  # Tensors in, a Tensor out, recorded in the graph

Positional arguments of ``apply`` are the differentiable inputs (Tensors, or
arrays/scalars that become constants); keyword arguments are plain settings
passed to ``forward`` unchanged.  ``backward`` returns one gradient per
positional input, in order (``None`` where none is needed; ``self.needs_input_grad``
says which are), each with its input's shape.
"""
from __future__ import annotations

from . import backend
from .grad_mode import is_grad_enabled


class Function:
    # attributes the engine itself uses; everything else on self is saved state
    inputs: tuple = ()
    needs_input_grad: tuple = ()

    @classmethod
    def apply(cls, *inputs, **settings):
        from .tensor import Tensor, _owner, as_tensor  # noqa: PLC0415 - tensor.py imports this module

        like = next((t for t in inputs if isinstance(t, Tensor)), None)
        tensors = tuple(as_tensor(t, like=like) for t in inputs)
        devices = {t.device for t in tensors}
        if len(devices) > 1:
            where = ", ".join(f"input {i}: {t.device} {t.shape}" for i, t in enumerate(tensors))
            raise RuntimeError(f"{cls.__name__}: inputs are on different devices ({where}); "
                               "move them with .to(device) first")
        fn = cls()
        fn.needs_input_grad = tuple(t.requires_grad for t in tensors)
        fn.inputs = tensors          # before forward, so that self.xp is right inside it
        out = fn.forward(*(t.data for t in tensors), **settings)
        requires_grad = is_grad_enabled() and any(fn.needs_input_grad)
        result = Tensor(out, requires_grad=requires_grad)
        owner = _owner(out)
        for t in tensors:  # a view (reshape, slice ...) shares its input's count of in-place writes
            if _owner(t.data) is owner:
                result._version = t._version
                break
        if requires_grad:
            fn.input_versions = tuple(t._version[0] for t in tensors)  # checked by backward, with
            fn.output_version = result._version[0]                      # the output's (forward may keep it)
            result.grad_fn = fn      # without a graph nothing keeps fn (nor its inputs) alive
        return result

    def forward(self, *arrays, **settings):
        raise NotImplementedError(f"{type(self).__name__} must define forward")

    def backward(self, grad):
        raise NotImplementedError(f"{type(self).__name__} must define backward")

    @property
    def xp(self):
        """The array module (numpy or cupy) of this function's inputs, in forward and backward."""
        if not self.inputs:
            raise RuntimeError(f"{type(self).__name__}.xp: the inputs are not known; run the function "
                               f"through {type(self).__name__}.apply(...), not by calling forward directly")
        return backend.get_array_module(*(t.data for t in self.inputs))

    def release(self):
        """Drop what forward saved, once backward has run (PyTorch's retain_graph=False)."""
        inputs = self.inputs
        self.__dict__.clear()
        self.inputs = inputs
        self.released = True

    def __repr__(self):
        return f"<{type(self).__name__}>"
