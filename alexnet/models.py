"""AlexNet and its seed reproductions as model variants (docs/alexnet.md describes each).

Every variant is one short declaration, a ``Spec``: the conv stages (``Conv``), the hidden
fully-connected widths, where normalisation / pooling / dropout go, the input it expects and
how its parameters are initialised.  One builder (``_build``) turns any Spec into an ``AlexNet``
module with PyTorch-style children::

    features    nn.Sequential  conv -> ReLU -> [norm] -> [max-pool], per conv stage
    avgpool     nn.AdaptiveAvgPool2d (only for `torchvision`)
    classifier  nn.Sequential  [Dropout] -> Linear -> ReLU ... -> Linear

so state-dict names are those of the equivalent torch.nn model (``features.0.weight``,
``classifier.1.weight`` ...) and parameters() come in the same order.

    model = alexnet.build("paper")                          # 3x227x227 -> 1000 logits
    model = alexnet.build("mini", width=0.5, norm="bn")     # ablations through options
    alexnet.recipe("paper")                                 # how to train it, as data

Options (``build(name, num_classes=None, **options)``):
    norm         "lrn" | "bn" | "none"        what sits at the variant's normalisation positions
    pool         "overlap" (3/2) | "nonoverlap" (2/2)
    dropout      probability p of the classifier's Dropout layers (0 removes them)
    in_channels  input channels
    input_size   input height = width (int) or (H, W); the fc6 width follows from it
    width        multiplier of every conv and hidden fc width (rounded to a multiple of the groups)
    init         "paper" | "xavier" | "kaiming" | "torch"
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace

import minidl.functional as F
from minidl import nn

# The paper's LRN: k=2, n=5, alpha=1e-4, beta=0.75 with b = a / (k + alpha * sum a^2)^beta.
# PyTorch's (and minidl's) LocalResponseNorm divides alpha by n (docs/numerics.md), so the
# paper's alpha=1e-4 becomes alpha = 1e-4 * 5 = 5e-4 here.
PAPER_LRN = dict(size=5, alpha=5e-4, beta=0.75, k=2.0)


def tf_lrn_to_torch(depth_radius: int, bias: float = 1.0, alpha: float = 1.0, beta: float = 0.5) -> dict:
    """Map TensorFlow's tf.nn.local_response_normalization onto F.local_response_norm's arguments.

    TensorFlow:  b_c = a_c / (bias + alpha * sum_{c'=c-r}^{c+r} a_{c'}^2)^beta  (no division by the window)
    PyTorch:     b_c = a_c / (k + alpha/n * sum_{c'=c-n//2}^{c+(n-1)//2} a_{c'}^2)^beta
    With n = 2r+1 the windows coincide (n//2 = (n-1)//2 = r), and alpha/n must equal TF's alpha.
    """
    n = 2 * int(depth_radius) + 1
    return dict(size=n, alpha=alpha * n, beta=beta, k=float(bias))


# tf-lrn's LRN: depth_radius 2, bias 1, alpha 1e-4, beta 0.75 -> size 5, alpha 5e-4, k 1.
TF_LRN = tf_lrn_to_torch(depth_radius=2, bias=1.0, alpha=1e-4, beta=0.75)

NORMS = ("lrn", "bn", "none")
POOLS = {"overlap": (3, 2), "nonoverlap": (2, 2)}
INITS = ("paper", "xavier", "kaiming", "torch")
OPTIONS = ("norm", "pool", "dropout", "in_channels", "input_size", "width", "init")


@dataclass(frozen=True)
class Conv:
    """One conv stage: conv(out, k, stride, pad, groups) -> ReLU -> [norm] -> [max-pool]."""
    out: int
    k: int
    stride: int = 1
    pad: int = 0
    groups: int = 1
    norm: bool = False   # a normalisation position (the paper's LRN after conv1 and conv2)
    pool: bool = False   # a max-pool after this stage


@dataclass(frozen=True)
class Spec:
    source: str
    input_shape: tuple            # (C, H, W) the source trains on
    convs: tuple                  # Conv stages
    hidden: tuple                 # widths of the hidden fully-connected layers (fc6, fc7)
    num_classes: int
    init: str                     # one of INITS
    norm: str = "none"            # one of NORMS
    lrn: dict = field(default_factory=lambda: dict(PAPER_LRN))
    norm_after_pool: bool = False  # tf-lrn: conv -> ReLU -> pool -> LRN
    pool: str = "overlap"
    dropout: float = 0.5
    dropout_before_fc: bool = True  # torchvision: Dropout -> fc6; the paper (as Caffe): fc6 -> ReLU -> Dropout
    adaptive_pool: tuple | None = None  # torchvision: AdaptiveAvgPool2d((6, 6)); any input size then works
    output: str = "logits"        # "softmax": the source ends in a softmax (forward still returns logits)


# --------------------------------------------------------------------------- the variants
VARIANTS: dict[str, Spec] = {
    # Krizhevsky, Sutskever & Hinton 2012, with the two GPUs' halves as groups=2 (conv2, conv4, conv5).
    "paper": Spec(
        "Krizhevsky et al. 2012", (3, 227, 227),
        (Conv(96, 11, 4, norm=True, pool=True), Conv(256, 5, pad=2, groups=2, norm=True, pool=True),
         Conv(384, 3, pad=1), Conv(384, 3, pad=1, groups=2), Conv(256, 3, pad=1, groups=2, pool=True)),
        (4096, 4096), 1000, init="paper", norm="lrn", lrn=PAPER_LRN, dropout_before_fc=False),
    # torchvision.models.alexnet (the "one weird trick" widths, 224 input, adaptive pooling).
    "torchvision": Spec(
        "torchvision.models.alexnet", (3, 224, 224),
        (Conv(64, 11, 4, pad=2, pool=True), Conv(192, 5, pad=2, pool=True), Conv(384, 3, pad=1),
         Conv(256, 3, pad=1), Conv(256, 3, pad=1, pool=True)),
        (4096, 4096), 1000, init="torch", adaptive_pool=(6, 6)),
    # Dive into Deep Learning, section 8.1: Fashion-MNIST resized to 224, one GPU (no groups), no LRN.
    "d2l": Spec(
        "Dive into Deep Learning (d2l.ai, ch. 8.1)", (1, 224, 224),
        (Conv(96, 11, 4, pad=1, pool=True), Conv(256, 5, pad=2, pool=True), Conv(384, 3, pad=1),
         Conv(384, 3, pad=1), Conv(256, 3, pad=1, pool=True)),
        (4096, 4096), 10, init="xavier", dropout_before_fc=False),
    # A Keras reproduction: batch norm after every conv's ReLU, softmax output, 224 input
    # (conv1 padding 2 keeps the paper's 55 -> 27 -> 13 -> 6 maps and fc6's 9216 inputs).
    "keras-bn": Spec(
        "a Keras reproduction (BatchNormalization for LRN)", (3, 224, 224),
        (Conv(96, 11, 4, pad=2, norm=True, pool=True), Conv(256, 5, pad=2, norm=True, pool=True),
         Conv(384, 3, pad=1, norm=True), Conv(384, 3, pad=1, norm=True), Conv(256, 3, pad=1, norm=True, pool=True)),
        (4096, 4096), 1000, init="torch", norm="bn", dropout_before_fc=False, output="softmax"),
    # A TensorFlow 2 reproduction: conv1 'same' padding (227 -> ceil(227/4) = 57, i.e. 4 each side),
    # max-pool then tf.nn.lrn(depth_radius=2, bias=1, alpha=1e-4, beta=0.75), one GPU (no groups).
    "tf-lrn": Spec(
        "a TensorFlow 2 reproduction (tf.nn.lrn after pooling)", (3, 227, 227),
        (Conv(96, 11, 4, pad=4, norm=True, pool=True), Conv(256, 5, pad=2, norm=True, pool=True),
         Conv(384, 3, pad=1), Conv(384, 3, pad=1), Conv(256, 3, pad=1, pool=True)),
        (4096, 4096), 1000, init="torch", norm="lrn", lrn=TF_LRN, norm_after_pool=True,
        dropout_before_fc=False, output="softmax"),
    # A PyTorch CIFAR-10 reproduction (the cuda-convnet 18% layout): two 5x5 convs, three fc layers.
    "cifar": Spec(
        "a PyTorch CIFAR-10 reproduction", (3, 32, 32),
        (Conv(64, 5, pool=True), Conv(64, 5, pool=True)),
        (384, 192), 10, init="torch", dropout=0.0),
    # This project's network: the paper's ingredients (groups, LRN, overlapping pooling, dropout)
    # at Fashion-MNIST's 28x28: 28 -> pool 13 -> pool 6 -> pool 2, fc 512 -> 512 -> 10.
    "mini": Spec(
        "this project (the paper's ingredients at 28x28)", (1, 28, 28),
        (Conv(64, 5, pad=2, norm=True, pool=True), Conv(128, 5, pad=2, groups=2, norm=True, pool=True),
         Conv(192, 3, pad=1), Conv(192, 3, pad=1, groups=2), Conv(128, 3, pad=1, groups=2, pool=True)),
        (512, 512), 10, init="kaiming", norm="lrn", lrn=PAPER_LRN),
}


# --------------------------------------------------------------------------- training recipes
# Read by alexnet.runs. "sgd-paper" is the paper's rule (optim.SGD(rule="paper")), "sgd" PyTorch's.
RECIPES: dict[str, dict] = {
    "paper": dict(optimizer="sgd-paper", lr=0.01, momentum=0.9, weight_decay=5e-4, batch_size=128,
                  epochs=90, schedule="plateau", schedule_args=dict(factor=0.1, times=3),
                  dataset="imagefolder", input_shape=(3, 227, 227),
                  notes="paper section 5: lr divided by 10 when validation error stopped improving (3 times); "
                        "random 227 crops of 256x256 images, horizontal flips"),
    "torchvision": dict(optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=1e-4, batch_size=256, epochs=90,
                        schedule="step", schedule_args=dict(step_size=30, gamma=0.1),
                        dataset="imagefolder", input_shape=(3, 224, 224),
                        notes="torchvision's reference classification recipe for alexnet (lr 0.01)"),
    "d2l": dict(optimizer="sgd", lr=0.01, momentum=0.0, weight_decay=0.0, batch_size=128, epochs=10,
                schedule="constant", schedule_args={}, dataset="fashion-mnist", input_shape=(1, 224, 224),
                notes="d2l ch. 8.1: plain minibatch SGD, Fashion-MNIST resized to 224"),
    "keras-bn": dict(optimizer="adam", lr=1e-3, momentum=0.0, weight_decay=0.0, batch_size=32, epochs=30,
                     schedule="constant", schedule_args={}, dataset="imagefolder", input_shape=(3, 224, 224),
                     notes="Adam with Keras' default lr, batch 32, an image folder such as Caltech-101"),
    "tf-lrn": dict(optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4, batch_size=128, epochs=50,
                   schedule="plateau", schedule_args=dict(factor=0.1, patience=3),
                   dataset="imagefolder", input_shape=(3, 227, 227),
                   notes="SGD with momentum, lr divided by 10 on plateaus"),
    "cifar": dict(optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4, batch_size=128, epochs=30,
                  schedule="cosine", schedule_args={}, dataset="cifar10", input_shape=(3, 32, 32),
                  notes="random crops with padding 4 and horizontal flips"),
    # The main job (README command 1): Fashion-MNIST within 10 minutes on a 2-core CPU, evaluation
    # included.  The one-cycle schedule is annealed to whichever ends first, the 8 epochs or the
    # 570 s budget.  Adam with one-cycle learned fastest in short trials; label smoothing 0.1 did
    # better than none in the 10-minute trials (docs/training.md has the trials and figures).
    # Evaluation at batch 512: faster than at 128, and its time counts in the budget.
    "mini": dict(optimizer="adam", lr=0.003, momentum=0.9, weight_decay=0.0, batch_size=64, epochs=8,
                 schedule="onecycle", schedule_args={}, dataset="fashion-mnist", input_shape=(1, 28, 28),
                 width=0.5, dropout=0.1, label_smoothing=0.1, time_budget=570, eval_batch_size=512,
                 notes="the main job: tuned for 10 minutes on a 2-core CPU (see docs/training.md)"),
}


def names() -> list:
    """The known variant names."""
    return list(VARIANTS)


def _spec(name: str) -> Spec:
    if name not in VARIANTS:
        raise ValueError(f"unknown AlexNet variant {name!r}; known variants: {', '.join(VARIANTS)}")
    return VARIANTS[name]


def recipe(name: str) -> dict:
    """The recommended training recipe of a variant (a fresh copy; edit freely)."""
    _spec(name)
    return copy.deepcopy(RECIPES[name])


# --------------------------------------------------------------------------- geometry
def _out(size: int, k: int, stride: int, pad: int) -> int:
    """Output length of a conv / floor-mode pool window sliding over ``size``."""
    return (size + 2 * pad - k) // stride + 1


def feature_sizes(spec: Spec, h: int, w: int) -> list:
    """(H, W) after each conv and each pool of ``spec.convs`` for an h x w input (may go below 1)."""
    pk, ps = POOLS[spec.pool]
    sizes = []
    for c in spec.convs:
        h, w = _out(h, c.k, c.stride, c.pad), _out(w, c.k, c.stride, c.pad)
        sizes.append((h, w))
        if c.pool:
            h, w = _out(h, pk, ps, 0), _out(w, pk, ps, 0)
            sizes.append((h, w))
    return sizes


def _valid(spec: Spec, h: int, w: int) -> bool:
    return all(a >= 1 and b >= 1 for a, b in feature_sizes(spec, h, w))


def min_input_size(spec: Spec) -> int:
    """The smallest square input whose every feature map is at least 1x1."""
    size = 1
    while not _valid(spec, size, size):
        size += 1
    return size


# --------------------------------------------------------------------------- the model
class AlexNet(nn.Module):
    """features -> [avgpool] -> flatten -> classifier, checking the input's shape first.

    ``input_shape`` is the (C, H, W) it was built for; ``fixed_size`` says whether H, W must
    equal it exactly (True unless an adaptive pool sits before the classifier, in which case
    any H, W >= ``min_size`` works).
    """

    def __init__(self, name, spec, features, classifier, avgpool=None, input_shape=None, min_size=1):
        super().__init__()
        self.features = features
        if avgpool is not None:
            self.avgpool = avgpool
        self.classifier = classifier
        self.variant = name
        self.spec = spec
        self.input_shape = tuple(input_shape)
        self.fixed_size = avgpool is None
        self.min_size = min_size
        self.output = spec.output

    def check_input(self, x):
        c, h, w = self.input_shape
        given = "x".join(map(str, x.shape[1:]))
        if x.ndim != 4 or x.shape[1] != c:
            raise ValueError(f"alexnet {self.variant!r}: expected input of shape (N, {c}, H, W), "
                             f"got shape {tuple(x.shape)}")
        if self.fixed_size and tuple(x.shape[2:]) != (h, w):
            raise ValueError(f"alexnet {self.variant!r}: expects input size {c}x{h}x{w}, got {given} "
                             f"(input shape {tuple(x.shape)}); build it with input_size={x.shape[2]} "
                             f"to change its geometry")
        if not self.fixed_size and min(x.shape[2:]) < self.min_size:
            raise ValueError(f"alexnet {self.variant!r}: input size {given} is too small; height and width "
                             f"must be at least {self.min_size} (input shape {tuple(x.shape)})")

    def forward(self, x):
        self.check_input(x)
        x = self.features(x)
        if not self.fixed_size:
            x = self.avgpool(x)
        return self.classifier(F.flatten(x, 1))

    def layers(self):
        """(name, callable) in the order forward applies them: what alexnet.summary walks."""
        out = [(f"features.{i}", m) for i, m in enumerate(self.features)]
        if not self.fixed_size:
            out.append(("avgpool", self.avgpool))
        out.append(("flatten", nn.Flatten()))
        return out + [(f"classifier.{i}", m) for i, m in enumerate(self.classifier)]

    def extra_repr(self):
        c, h, w = self.input_shape
        return f"variant={self.variant!r}, input={c}x{h}x{w}"


def _scaled(width: int, mult: float, groups: int = 1) -> int:
    """round(width * mult) to a positive multiple of groups."""
    return max(groups, int(round(width * mult / groups)) * groups)


def _apply_options(name: str, spec: Spec, options: dict) -> tuple:
    """The spec with ablation options applied, and the (C, H, W) input it is built for."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"alexnet.build({name!r}): unknown option(s) {unknown}; known options: {', '.join(OPTIONS)}")
    changes = {}
    norm = options.get("norm", spec.norm)
    if norm not in NORMS:
        raise ValueError(f"alexnet.build({name!r}): norm must be one of {NORMS}, got {norm!r}")
    pool = options.get("pool", spec.pool)
    if pool not in POOLS:
        raise ValueError(f"alexnet.build({name!r}): pool must be one of {tuple(POOLS)}, got {pool!r}")
    init = options.get("init", spec.init)
    if init not in INITS:
        raise ValueError(f"alexnet.build({name!r}): init must be one of {INITS}, got {init!r}")
    p = options.get("dropout", spec.dropout)
    if not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ValueError(f"alexnet.build({name!r}): dropout must be a probability in [0, 1), got {p!r}")
    changes.update(norm=norm, pool=pool, init=init, dropout=float(p))
    if norm == "lrn" and spec.norm != "lrn":
        changes["lrn"] = dict(PAPER_LRN)  # a variant without LRN gets the paper's when asked for one
    width = options.get("width", 1.0)
    if not isinstance(width, (int, float)) or width <= 0:
        raise ValueError(f"alexnet.build({name!r}): width must be a positive number, got {width!r}")
    if width != 1.0:
        # a conv's outputs are the next conv's inputs: a multiple of both convs' groups
        nxt = [c.groups for c in spec.convs[1:]] + [1]
        changes["convs"] = tuple(replace(c, out=_scaled(c.out, width, math.lcm(c.groups, g)))
                                 for c, g in zip(spec.convs, nxt))
        changes["hidden"] = tuple(_scaled(n, width) for n in spec.hidden)
    spec = replace(spec, **changes)

    c, h, w = spec.input_shape
    c = options.get("in_channels", c)
    if not isinstance(c, int) or c < 1:
        raise ValueError(f"alexnet.build({name!r}): in_channels must be a positive integer, got {c!r}")
    size = options.get("input_size", (h, w))
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if not _valid(spec, h, w):
        raise ValueError(f"alexnet.build({name!r}): input size {h}x{w} is too small for this network "
                         f"(feature maps {feature_sizes(spec, h, w)}); the smallest square input is "
                         f"{min_input_size(spec)}")
    for conv, cin in zip(spec.convs, (c,) + tuple(k.out for k in spec.convs)):
        if cin % conv.groups:
            raise ValueError(f"alexnet.build({name!r}): a conv with groups={conv.groups} needs input channels "
                             f"divisible by {conv.groups}, got {cin}")
    return spec, (c, h, w)


def _build(name: str, spec: Spec, input_shape: tuple, num_classes: int) -> AlexNet:
    c, h, w = input_shape
    pk, ps = POOLS[spec.pool]

    def norm_layer(channels):
        if spec.norm == "bn":
            return nn.BatchNorm2d(channels)
        return nn.LocalResponseNorm(**spec.lrn)

    layers, convs = [], []
    for stage in spec.convs:
        conv = nn.Conv2d(c, stage.out, stage.k, stride=stage.stride, padding=stage.pad, groups=stage.groups)
        convs.append(conv)
        layers += [conv, nn.ReLU(inplace=True)]
        after = [nn.MaxPool2d(pk, ps)] if stage.pool else []
        if stage.norm and spec.norm != "none":
            after.insert(len(after) if spec.norm_after_pool else 0, norm_layer(stage.out))
        layers += after
        c = stage.out

    avgpool = None
    if spec.adaptive_pool is not None:
        avgpool = nn.AdaptiveAvgPool2d(spec.adaptive_pool)
        fh, fw = spec.adaptive_pool
    else:
        fh, fw = feature_sizes(spec, h, w)[-1]
    fan_in = c * fh * fw

    classifier, linears = [], []
    for width in spec.hidden:
        fc = nn.Linear(fan_in, width)
        linears.append(fc)
        if spec.dropout > 0 and spec.dropout_before_fc:
            classifier.append(nn.Dropout(spec.dropout))
        classifier += [fc, nn.ReLU(inplace=True)]
        if spec.dropout > 0 and not spec.dropout_before_fc:
            classifier.append(nn.Dropout(spec.dropout))
        fan_in = width
    linears.append(nn.Linear(fan_in, num_classes))
    classifier.append(linears[-1])

    INIT_FUNCTIONS[spec.init](convs, linears)
    return AlexNet(name, spec, nn.Sequential(*layers), nn.Sequential(*classifier), avgpool,
                   input_shape=(input_shape[0], h, w), min_size=min_input_size(spec))


# --------------------------------------------------------------------------- initialisation
def _init_paper(convs, linears):
    """Paper section 5: weights N(0, 0.01); biases 1 in conv2, conv4, conv5 and the hidden fc layers
    (to give the ReLUs positive inputs early on), 0 in conv1, conv3 and the output layer."""
    ones = [i in (1, 3, 4) for i in range(len(convs))] + [True] * (len(linears) - 1) + [False]
    for m, one in zip(convs + linears, ones):
        nn.init.normal_(m.weight, 0.0, 0.01)
        nn.init.constant_(m.bias, 1.0 if one else 0.0)


def _init_xavier(convs, linears):
    """d2l's init_cnn: xavier_uniform_ weights; biases keep PyTorch's default U(+-1/sqrt(fan_in))."""
    for m in convs + linears:
        nn.init.xavier_uniform_(m.weight)


def _init_kaiming(convs, linears):
    """He et al. 2015: N(0, 2/fan_in) weights (gain sqrt(2) for ReLU), zero biases."""
    for m in convs + linears:
        nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(m.bias)


def _init_torch(convs, linears):
    """PyTorch's default, which nn.Conv2d and nn.Linear already applied on construction."""


INIT_FUNCTIONS = {"paper": _init_paper, "xavier": _init_xavier, "kaiming": _init_kaiming, "torch": _init_torch}


def build(name: str, num_classes: int | None = None, **options) -> AlexNet:
    """Build variant ``name`` (see ``names()``) with ``num_classes`` outputs (the source's by default).

    Options change the paper's choices for ablations; see the module docstring. An unknown
    name, option or option value raises ValueError listing the known ones.
    """
    spec = _spec(name)
    if num_classes is None:
        num_classes = spec.num_classes
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"alexnet.build({name!r}): num_classes must be a positive integer, got {num_classes!r}")
    spec, input_shape = _apply_options(name, spec, options)
    return _build(name, spec, input_shape, num_classes)


def param_count(name: str, num_classes: int | None = None, **options) -> int:
    """The number of parameter elements ``build(name, num_classes, **options)`` would allocate,
    computed from the spec without building anything (checked against built models in the tests).

    A checkpoint's metadata says which model to build: comparing this count with the weights the
    file holds refuses metadata asking for a far larger model before any memory is spent on it."""
    spec = _spec(name)
    num_classes = spec.num_classes if num_classes is None else num_classes
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"alexnet.build({name!r}): num_classes must be a positive integer, got {num_classes!r}")
    spec, (c, h, w) = _apply_options(name, spec, options)
    total = 0
    for stage in spec.convs:
        total += stage.out * (c // stage.groups) * stage.k * stage.k + stage.out
        if stage.norm and spec.norm == "bn":
            total += 2 * stage.out            # BatchNorm2d's weight and bias
        c = stage.out
    fh, fw = spec.adaptive_pool if spec.adaptive_pool is not None else feature_sizes(spec, h, w)[-1]
    fan_in = c * fh * fw
    for width in spec.hidden + (num_classes,):
        total += fan_in * width + width
        fan_in = width
    return total
