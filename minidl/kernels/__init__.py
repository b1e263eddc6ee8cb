"""Hand-written kernels on raw arrays, one file per family.

Each family keeps three versions of one computation: ``*_reference`` (plain
NumPy, the ground truth), ``*_numba`` (the CPU default) and ``*_cupy`` (the GPU
default), and a dispatcher that picks by the arrays' device.  Kernels know
nothing of Tensors or autograd.
"""
