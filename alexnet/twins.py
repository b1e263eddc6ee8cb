"""A PyTorch twin of any alexnet model, layer for layer, with the same parameter values.

The benchmarks use it to time the same network in both frameworks in one run
(the parity tests keep their own hand-written twins, an independent check).
Needs PyTorch, a test-only dependency: ``pip install -e '.[test]'``.
"""
from __future__ import annotations


def torch_layer(layer):
    """The torch.nn layer equivalent to one minidl layer (parameters not copied)."""
    import torch  # noqa: PLC0415 - optional dependency, loaded only when used

    kind = type(layer).__name__
    if kind == "Conv2d":
        return torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                               padding=layer.padding, groups=layer.groups, bias=layer.bias is not None)
    if kind == "Linear":
        return torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    if kind == "ReLU":
        return torch.nn.ReLU()
    if kind == "MaxPool2d":
        return torch.nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)
    if kind == "LocalResponseNorm":
        return torch.nn.LocalResponseNorm(layer.size, layer.alpha, layer.beta, layer.k)
    if kind == "Dropout":
        return torch.nn.Dropout(layer.p)
    if kind == "BatchNorm2d":
        return torch.nn.BatchNorm2d(layer.num_features, eps=layer.eps, momentum=layer.momentum)
    if kind == "AdaptiveAvgPool2d":
        return torch.nn.AdaptiveAvgPool2d(layer.output_size)
    if kind == "Flatten":
        return torch.nn.Flatten(layer.start_dim, layer.end_dim)
    raise TypeError(f"torch_twin: no PyTorch equivalent known for layer {kind}")


def torch_twin(model):
    """A torch.nn.Module computing what ``model`` (an alexnet.models.AlexNet) computes, with its
    state dict (same names, same values) loaded."""
    import torch  # noqa: PLC0415 - optional dependency, loaded only when used

    class Twin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Sequential(*[torch_layer(m) for m in model.features])
            self.avgpool = torch_layer(model.avgpool) if not model.fixed_size else torch.nn.Identity()
            self.classifier = torch.nn.Sequential(*[torch_layer(m) for m in model.classifier])

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    twin = Twin()
    twin.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in model.state_dict().items()})
    return twin

