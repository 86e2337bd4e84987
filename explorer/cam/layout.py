"""How a CAM layer's output is laid out, derived from the model itself, so CNNs, ViTs and Swins explain alike.

A CAM needs a feature map (B, C, h, w). CNN layers give one directly ("nchw"). A ViT block gives tokens (B, T, C):
the prefix tokens (class token, distillation token, register tokens) come first and are dropped, and the patch
tokens are reshaped to the patch grid ("tokens"). timm's Swin stages give (B, h, w, C) ("nhwc"). The layout is
found by one forward pass of a blank image at the card's input size, with the prefix count read from the model
(timm's ``num_prefix_tokens``, birder's ``num_special_tokens``) and checked against the token count; nothing is
typed into the card. ``FeatureLayout`` is callable, so it is also pytorch-grad-cam's ``reshape_transform``.

When a card names no CAM layer, ``choose_cam_layer`` picks one and says why: for transformers the last block's
pre-attention norm (``norm1``; with class-token pooling the final norm's patch tokens get no gradient at all), for
CNNs the last module whose output is still a spatial map."""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass

import torch
from torch import nn

KINDS = ("nchw", "nhwc", "tokens")


@dataclass(frozen=True)
class FeatureLayout:
    kind: str = "nchw"
    prefix: int = 0  # tokens dropped before the patch tokens (class, distillation, register tokens)
    grid: tuple[int, int] = (0, 0)  # (h, w) of the feature map

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) from the layer's output (or from a gradient of the same shape)."""
        if self.kind == "nchw":
            return tensor
        if self.kind == "nhwc":
            return tensor.permute(0, 3, 1, 2)
        patches = tensor[:, self.prefix :, :]
        h, w = self.grid
        return patches.reshape(patches.shape[0], h, w, patches.shape[2]).permute(0, 3, 1, 2)

    def describe(self) -> str:
        h, w = self.grid
        if self.kind == "tokens":
            dropped = f"{self.prefix} prefix token{'s' if self.prefix != 1 else ''} dropped"
            return f"tokens: {dropped}, {h * w} patch tokens as a {h}×{w} grid"
        return f"a {h}×{w} feature map" + (" (channels last)" if self.kind == "nhwc" else "")


def probe_output(module: nn.Module, layer: nn.Module, input_size: int) -> torch.Tensor:
    """The layer's output for one blank image (ValueError when it does not run exactly once or is no tensor)."""
    captured = []
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
    device = next(module.parameters()).device
    try:
        with torch.no_grad():
            module(torch.zeros(1, 3, input_size, input_size, device=device))
    finally:
        handle.remove()
    if len(captured) != 1 or not isinstance(captured[0], torch.Tensor):
        kind = type(captured[0]).__name__ if captured else "nothing"
        raise ValueError(
            f"the CAM layer must run once per forward pass and give a tensor (it gave {kind}, {len(captured)} time(s))"
        )
    return captured[0]


def prefix_tokens(module: nn.Module) -> int | None:
    """The model's own count of tokens before the patches, when it says (timm, birder)."""
    for attribute in ("num_prefix_tokens", "num_special_tokens"):
        value = getattr(module, attribute, None)
        if isinstance(value, int):
            return value
    return None


def derive_layout(module: nn.Module, layer: nn.Module, input_size: int) -> FeatureLayout:
    """The layout of ``layer``'s output in ``module`` at ``input_size`` (ValueError saying why it cannot explain)."""
    shape = tuple(probe_output(module, layer, input_size).shape)
    if len(shape) == 4:
        channels_last = shape[1] == shape[2] and shape[3] != shape[1]
        if shape[1] == shape[2] == shape[3]:
            channels_last = getattr(module, "output_fmt", "") == "NHWC"
        return FeatureLayout("nhwc", 0, shape[1:3]) if channels_last else FeatureLayout("nchw", 0, shape[2:4])
    if len(shape) == 3:
        return _token_layout(module, shape[1])
    raise ValueError(
        f"the CAM layer's output is {shape}: no spatial layout to explain; choose a layer with a feature map "
        "(B, C, h, w) or tokens (B, T, C)"
    )


def _token_layout(module: nn.Module, tokens: int) -> FeatureLayout:
    prefix = prefix_tokens(module)
    if prefix is None:  # not said: the patches fill the largest square grid, the rest are prefix tokens
        prefix = tokens - math.isqrt(tokens) ** 2
    side = math.isqrt(max(tokens - prefix, 0))
    if side == 0 or side * side != tokens - prefix:
        raise ValueError(
            f"the CAM layer gives {tokens} tokens; with {prefix} prefix tokens the other {tokens - prefix} do not "
            "form a square patch grid"
        )
    return FeatureLayout("tokens", prefix, (side, side))


def choose_cam_layer(module: nn.Module, input_size: int) -> tuple[str, str]:
    """(layer name, why) for a model whose card names no CAM layer."""
    outputs = _output_ranks(module, input_size)
    runs = [name for name, _ in outputs]
    spatial = [name for name, shape in outputs if _is_spatial(shape) and runs.count(name) == 1]
    if not spatial:
        raise ValueError("no layer of this model outputs a feature map or tokens; name cam_layer in the card")
    last = dict(outputs)[spatial[-1]]
    if len(last) == 3 or (len(last) == 4 and last[1] == last[2] and last[3] != last[1]):
        norms = [name for name in spatial if name.rsplit(".", 1)[-1] == "norm1"]
        if norms:
            return norms[-1], (
                "not named in the card: the last transformer block's pre-attention norm (its patch tokens reach "
                "the logits through attention even when the model pools the class token)"
            )
    return spatial[-1], "not named in the card: the last layer whose output is still a spatial map"


def _output_ranks(module: nn.Module, input_size: int) -> list[tuple[str, tuple[int, ...]]]:
    """(name, output shape) of every named module, in the order they finish in one blank forward pass."""
    order: list[tuple[str, tuple[int, ...]]] = []

    def record(name: str, out) -> None:
        if isinstance(out, torch.Tensor):
            order.append((name, tuple(out.shape)))

    handles = [
        m.register_forward_hook(lambda _m, _i, out, name=name: record(name, out))
        for name, m in module.named_modules()
        if name
    ]
    try:
        probe = torch.zeros(1, 3, input_size, input_size, device=next(module.parameters()).device)
        with torch.no_grad():
            module(probe)
    finally:
        for handle in handles:
            handle.remove()
    return order


def _is_spatial(shape: tuple[int, ...]) -> bool:
    if len(shape) == 4:
        return min(shape[2:]) > 1 or min(shape[1:3]) > 1
    return len(shape) == 3 and shape[1] > 1


def nearest_layers(module: nn.Module, name: str, n: int = 5) -> list[str]:
    """The model's module names closest to a mistyped ``name``."""
    names = [full for full, _ in module.named_modules() if full]
    return difflib.get_close_matches(name, names, n=n, cutoff=0.4) or names[-n:]
