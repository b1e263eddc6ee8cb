"""Which algorithm computes each convolution (the knob is named after torch.backends.cudnn).

    import minidl
    minidl.backends.conv.algorithm = "auto"   # or "benchmark", "im2col", "winograd", "fft",
                                              # "winograd-2x2", "winograd-4x4" (a tile forced),
                                              # "winograd-1x4" (Winograd along the rows only)
    minidl.backends.conv.weight_grad = "same" # or "im2col": the weight gradient by im2col's GEMM
    minidl.backends.conv.chosen()             # {layer: algorithm} of the calls made so far

"auto" (the default) is a fixed rule (``auto``) on the layer's shape, dtype and device, so the
same seed gives the same run.  "benchmark" times every applicable algorithm the first time a
configuration is seen and keeps the fastest for the process: faster, but results can differ in
the last bits from run to run (a different winner on a different day).  Forcing an algorithm that
cannot compute a layer (Winograd on a strided layer) raises ValueError.  Every algorithm computes
the same cross-correlation; their float32 errors are in docs/kernels/winograd.md and fft.md.
"""
from __future__ import annotations

import contextlib
import math
import time

from ..kernels import winograd, winograd_rows
from ..kernels.fft_conv import fft_size

SETTINGS = ("auto", "benchmark", "im2col", "winograd", "winograd-2x2", "winograd-4x4", "winograd-1x4", "fft")
ALGORITHMS = ("im2col", "winograd-2x2", "winograd-4x4", "winograd-1x4", "fft")   # what a setting resolves to
TILE = {"winograd-2x2": 2, "winograd-4x4": 4}   # 2-D Winograd F(m x m, r x r): kernels/winograd.py
ROW_TILE = {"winograd-1x4": 4}                  # F(1 x m, kh x kw) along the rows: kernels/winograd_rows.py

algorithm = "auto"
weight_grad = "same"

# ------------------------------------------------------------------ the "auto" rule: retune here
# Kernel sizes for which "winograd" may use Winograd, and the tiles it may take (F(4x4, 5x5)
# exists, forced as "winograd-4x4", but its points 1/2 and -1/2 cost accuracy).
WINOGRAD_TILES = {3: (2, 4), 5: (2,)}
# What "auto" picks, from benchmarks/conv_algorithms.py on the 2-core development machines
# (docs/benchmarks.md, "Convolution algorithms"): F(2x2, 3x3) beat im2col on 5 of the 6 3x3 layers
# of AlexNet and mini (by 5-18% summed over two runs); F(4x4, 3x3) was slower than F(2x2, 3x3)
# everywhere (its transforms cost more than the multiplies it saves), Winograd on 5x5 layers was
# slower than im2col, and FFT 3-8x slower than im2col on every layer.
# kernel size -> (algorithm, the smallest output map it gets), for stride-1 layers on the CPU
AUTO_WINOGRAD = {3: ("winograd-2x2", 10), 5: ("winograd-1x4", 20)}
MIN_CHANNELS = 16  # below this many input channels per group the transforms outweigh the GEMMs
# Once im2col's "same width" kernels vectorised, it beat F(2x2, 3x3) on mini's 6x6 maps (conv3-5,
# by 20-40%) while F(2x2, 3x3) still won on AlexNet's 13x13 ones (by 20-25%): on small maps the
# per-tile work of the transforms outweighs the multiplies saved.  Nothing between was measured.
# Winograd along the rows, F(1x4, 5x5), beat im2col on the 27x27 maps of AlexNet's conv2 (paper
# 1.43x, torchvision 1.58x, forward + backward alternated at batch 32) and lost on mini's 13x13
# conv2 (0.88-0.90x at batch 64, alternated), hence 20 for 5x5; some other small 5x5 layers gain
# (docs/kernels/winograd.md, section 10), but no rule separated them in the few measurements.
# After im2col's channel-major kernels for "same" padding, AlexNet's grouped conv4 and conv5 are a
# toss-up that depends on the machine's phase (alternated fwd+bwd at batch 32: im2col 8-11% faster
# in a slow phase, Winograd 0-15% faster in a fast one; the whole `paper` step within 1.4%), so
# no groups condition; ungrouped 13x13 layers stay clearly Winograd's (11-22%).


def auto(x_shape, w_shape, stride, padding, groups, dtype, device):
    """The deterministic rule: on the CPU, for stride-1 layers with at least MIN_CHANNELS input
    channels per group, Winograd F(2x2, 3x3) for 3x3 kernels and an output map of at least 10 rows
    and columns, Winograd along the rows F(1x4, 5x5) for 5x5 kernels and at least 20 (AUTO_WINOGRAD);
    im2col for everything else and on the GPU."""
    choice, min_output = AUTO_WINOGRAD.get(w_shape[2], (None, 0)) if w_shape[2] == w_shape[3] else (None, 0)
    if device != "cpu" or choice is None or w_shape[1] < MIN_CHANNELS or requirement(choice, w_shape, stride):
        return "im2col"
    (ph, pw) = _pair(padding)
    out_rows, out_cols = x_shape[2] + 2 * ph - w_shape[2] + 1, x_shape[3] + 2 * pw - w_shape[3] + 1
    return choice if min(out_rows, out_cols) >= min_output else "im2col"


def multiplies(name, x_shape, w_shape, stride, padding, groups):
    """Estimated real multiplies of one forward call (the backward costs about twice as much)."""
    n, c, h, w = x_shape
    o, cg, kh, kw = w_shape
    hp, wp = h + 2 * padding[0], w + 2 * padding[1]
    oh, ow = hp - kh + 1, wp - kw + 1
    if name == "im2col":
        return n * o * cg * kh * kw * ((hp - kh) // stride[0] + 1) * ((wp - kw) // stride[1] + 1)
    if name in ROW_TILE:
        m = ROW_TILE[name]
        if winograd_rows.applies(w_shape, stride, m) is not None:
            return math.inf
        a = m + kw - 1
        tiles = n * oh * math.ceil(ow / m)
        gemm = a * tiles * o * cg * kh
        # B^T per input row and tile (its nonzero entries), A^T per tile and output channel, G per filter row
        nonzero_bt = int((winograd.matrices(m, kw)[2] != 0).sum())
        transforms = n * c * h * math.ceil(ow / m) * nonzero_bt + tiles * o * m * a + o * cg * kh * a * kw
        return gemm + transforms
    if name in TILE:
        m = TILE[name]
        if winograd.applies(w_shape, stride, m) is not None:
            return math.inf            # this tile cannot compute the layer at all
        a = m + kh - 1
        tiles = n * math.ceil(oh / m) * math.ceil(ow / m)
        gemm = a * a * tiles * o * cg
        # as kernels/winograd.py computes them on the CPU: B^T d B per patch and channel as two
        # passes over B^T's nonzero entries (F(2x2, 3x3): only adds, counted all the same),
        # kron(A^T, A^T) (m^2 x a^2) per tile and output channel, kron(G, G) per filter
        nonzero_bt = int((winograd.matrices(m, kh)[2] != 0).sum())
        transforms = tiles * (c * 2 * a * nonzero_bt + o * m * m * a * a) + o * cg * a * a * kh * kh
        return gemm + transforms
    if name == "fft":
        hf, wf = fft_size(hp), fft_size(wp)
        freqs = hf * (wf // 2 + 1)
        fft = 2 * hf * wf * math.log2(hf * wf)  # one real 2-D FFT, roughly
        return 4 * freqs * n * o * cg + fft * (n * c + n * o + o * cg)
    raise ValueError(f"multiplies: unknown algorithm {name!r}; expected one of {ALGORITHMS}")


# ------------------------------------------------------------------ applicability
def requirement(name, w_shape, stride):
    """None when ``name`` can compute a layer of this weight shape and stride, else what it needs."""
    kh, kw = w_shape[2:]
    if name == "im2col":
        return None
    if tuple(stride) != (1, 1):
        return f"stride 1 (got stride {tuple(stride)})"
    if name == "fft":
        return None
    if name in ROW_TILE:
        return winograd_rows.applies(w_shape, stride, ROW_TILE[name])
    return winograd.applies(w_shape, stride, TILE[name])


# ------------------------------------------------------------------ choosing, remembering
_chosen = {}       # layer key -> the algorithm its last call used
_benchmarked = {}  # layer key -> the winner of "benchmark"


def _key(x_shape, w_shape, stride, padding, groups, dtype, device):
    return (tuple(x_shape), tuple(w_shape), tuple(stride), tuple(padding), int(groups), str(dtype), str(device))


def algorithm_for(x_shape, w_shape, stride, padding, groups, dtype, device, setting=None):
    """The algorithm a call with these arguments gets under ``setting`` (default: the current one);
    under "benchmark", the remembered winner, or None before the configuration was timed."""
    setting = algorithm if setting is None else setting
    stride, padding = _pair(stride), _pair(padding)
    key = _key(x_shape, w_shape, stride, padding, groups, dtype, device)
    if setting not in SETTINGS:
        raise ValueError(f"minidl.backends.conv.algorithm must be one of {SETTINGS}, got {setting!r}")
    if setting == "auto":
        return auto(x_shape, w_shape, stride, padding, groups, dtype, device)
    if setting == "benchmark":
        return _benchmarked.get(key)
    name = setting
    if setting == "winograd":  # the tile of the table (the cheaper one), or 2x2 off the table
        tiles = [f"winograd-{m}x{m}" for m in WINOGRAD_TILES.get(w_shape[2], (2,))]
        name = min(tiles, key=lambda a: multiplies(a, x_shape, w_shape, stride, padding, groups))
    need = requirement(name, w_shape, stride)
    if need is not None:
        raise ValueError(f"conv2d: algorithm {setting!r} does not apply to the layer with input {tuple(x_shape)}, "
                         f"weight {tuple(w_shape)}, stride {stride}, padding {padding}, groups {groups}: "
                         f"it needs {need}")
    return name


def select(x_shape, w_shape, stride, padding, groups, dtype, device, trial=None):
    """The algorithm for this call (``trial(name)`` runs one forward+backward, for "benchmark"); recorded."""
    stride, padding = _pair(stride), _pair(padding)
    key = _key(x_shape, w_shape, stride, padding, groups, dtype, device)
    name = algorithm_for(x_shape, w_shape, stride, padding, groups, dtype, device)
    if name is None:  # "benchmark", first time: time each applicable algorithm, keep the fastest
        times = {}
        for a in ALGORITHMS:
            if requirement(a, w_shape, stride) is None:
                trial(a)  # warm-up (Numba compilation, caches)
                start = time.perf_counter()
                trial(a)
                times[a] = time.perf_counter() - start
        name = _benchmarked[key] = min(times, key=times.get)
    _chosen[key] = name
    return name


def chosen():
    """{(x shape, w shape, stride, padding, groups, dtype, device): algorithm} of the calls so far."""
    return dict(_chosen)


def reset():
    """Forget the recorded choices and the benchmark winners."""
    _chosen.clear()
    _benchmarked.clear()


@contextlib.contextmanager
def flags(algorithm=None, weight_grad=None):
    """Within the block, use these settings (None keeps the current one)."""
    global_vars = globals()
    saved = global_vars["algorithm"], global_vars["weight_grad"]
    if algorithm is not None and algorithm not in SETTINGS:
        raise ValueError(f"flags: algorithm must be one of {SETTINGS}, got {algorithm!r}")
    if weight_grad is not None and weight_grad not in ("same", "im2col"):
        raise ValueError(f"flags: weight_grad must be 'same' or 'im2col', got {weight_grad!r}")
    global_vars["algorithm"] = saved[0] if algorithm is None else algorithm
    global_vars["weight_grad"] = saved[1] if weight_grad is None else weight_grad
    try:
        yield
    finally:
        global_vars["algorithm"], global_vars["weight_grad"] = saved


def _pair(v):
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))
