"""Architecture registry: every classifier is built by name through one factory, like timm's create_model.

Builders take ``num_classes`` and return an ``nn.Module`` with random weights; weights are loaded
separately from the card (never from a hub). ``torchvision:<name>``, ``timm:<name>`` and ``birder:<name>`` build
any architecture those libraries know, for users' own checkpoints; ``options`` (the card's ``architecture_args``)
go to the library's constructor (timm's ``img_size``, a birder network's config).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

_BUILDERS: dict[str, Callable[[int], nn.Module]] = {}


def register_model(name: str) -> Callable:
    """Decorator: register ``fn(num_classes) -> nn.Module`` under ``name``."""

    def wrap(fn: Callable[[int], nn.Module]) -> Callable[[int], nn.Module]:
        if name in _BUILDERS:
            raise ValueError(f"architecture {name!r} is already registered")
        _BUILDERS[name] = fn
        return fn

    return wrap


def list_models() -> list[str]:
    """Registered architecture names (plus the torchvision:/timm: prefixes)."""
    return sorted(_BUILDERS) + ["torchvision:<name>", "timm:<name>", "birder:<name>"]


def create_model(architecture: str, num_classes: int, options: dict | None = None, input_size: int = 224) -> nn.Module:
    """Build an architecture by name with ``num_classes`` outputs and random weights, in eval mode."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    library, _, name = architecture.partition(":")
    options = dict(options or {})
    try:
        if library == "torchvision" and name:
            model = _create_torchvision(name, num_classes, options)
        elif library == "timm" and name:
            model = _create_timm(name, num_classes, options)
        elif library == "birder" and name:
            model = _create_birder(name, num_classes, options, input_size)
        elif architecture in _BUILDERS and not options:
            model = _BUILDERS[architecture](num_classes)
        elif architecture in _BUILDERS:
            raise ValueError(f"architecture {architecture!r} takes no architecture_args")
        else:
            raise ValueError(f"unknown architecture {architecture!r}; known: {list_models()}")
    except TypeError as err:  # an option the constructor does not take
        hint = " (num_classes is set from the label file: leave it out)" if "num_classes" in str(err) else ""
        raise ValueError(f"architecture {architecture!r} does not take these architecture_args{hint}: {err}") from err
    return model.eval()


def _create_torchvision(name: str, num_classes: int, options: dict) -> nn.Module:
    import torchvision

    try:
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **options)
    except ValueError as err:
        raise ValueError(f"torchvision has no architecture {name!r}: {err}") from err


def _create_timm(name: str, num_classes: int, options: dict) -> nn.Module:
    try:
        import timm
    except ImportError as err:
        raise ValueError("architecture 'timm:...' needs the timm package (pip install timm)") from err
    if not timm.is_model(name):
        raise ValueError(f"timm has no architecture {name!r}")
    return timm.create_model(name, num_classes=num_classes, **options)


def _create_birder(name: str, num_classes: int, options: dict, input_size: int) -> nn.Module:
    """A birder network at the checkpoint's input size; ``options`` is its config (e.g. a smaller depth)."""
    try:
        from birder.model_registry import registry
    except ImportError as err:
        raise ValueError("architecture 'birder:...' needs the birder package (pip install birder)") from err
    if name.lower() not in registry.all_nets and name.lower() not in getattr(registry, "name_aliases", {}):
        raise ValueError(f"birder has no network {name!r}")
    return registry.net_factory(name, num_classes, 3, config=options or None, size=(input_size, input_size))


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding: the extra pixel goes bottom/right, as in TFLite models."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        pads = []
        for size, k, s, d in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1], self.dilation[::-1]):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _to_same_padding(module: nn.Module) -> None:
    """Swap every strided 3x3 conv for Conv2dSame (same parameters, so state_dict keys are unchanged)."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv2d) and child.stride != (1, 1):
            same = Conv2dSame(
                child.in_channels,
                child.out_channels,
                child.kernel_size,
                child.stride,
                padding=0,
                dilation=child.dilation,
                groups=child.groups,
                bias=child.bias is not None,
            )
            setattr(module, name, same)
        else:
            _to_same_padding(child)


@register_model("mobilenet_v2")
def mobilenet_v2(num_classes: int) -> nn.Module:
    """torchvision MobileNetV2 1.0 (PyTorch padding)."""
    import torchvision

    return torchvision.models.mobilenet_v2(weights=None, num_classes=num_classes)


@register_model("mobilenet_v2_tf")
def mobilenet_v2_tf(num_classes: int) -> nn.Module:
    """torchvision MobileNetV2 1.0 with TF 'SAME' padding on strided convs, for converted TFLite models."""
    model = mobilenet_v2(num_classes)
    _to_same_padding(model.features)
    return model


@register_model("efficientnet_lite0")
def efficientnet_lite0(num_classes: int) -> nn.Module:
    """EfficientNet-Lite0 from the efficientnet-lite-pytorch package (no weights are fetched)."""
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name("efficientnet-lite0", num_classes=num_classes)


class TinyCNN(nn.Module):
    """A few-kilobyte CNN with a GAP + linear head: real code path, milliseconds to run. For tests."""

    def __init__(self, num_classes: int, width: int = 8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU6(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU6(),
        )
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, num_classes)
        feats = self.features(x)  # (B, 2w, H/4, W/4)
        return self.classifier(feats.mean(dim=(2, 3)))


@register_model("tiny_cnn")
def tiny_cnn(num_classes: int) -> nn.Module:
    return TinyCNN(num_classes)
