"""Class activation maps: a fast Grad-CAM for all top-k classes from one forward pass, plus the other
methods of pytorch-grad-cam (the reference implementation) and overlays.

Fast path: a forward hook on the target layer hands the rest of the network a leaf copy of its output
``A`` (B, C, h, w) that requires grad. The trunk's parameters are frozen, so autograd records only the
tail (activation, pooling, linear head). Grad-CAM needs dlogit_c/dA for each class c; backpropagating
through that tiny tail k times costs almost nothing next to the forward pass. The result is exactly
pytorch-grad-cam's GradCAM (same weights = mean gradient, ReLU, min-max scaling, bilinear resize).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FAST_METHOD = "gradcam"
# name shown to users -> pytorch-grad-cam class name
REFERENCE_METHODS = {
    "gradcam (pytorch-grad-cam)": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "xgradcam": "XGradCAM",
    "layercam": "LayerCAM",
    "eigencam": "EigenCAM",
    "hirescam": "HiResCAM",
}
METHODS = (FAST_METHOD, *REFERENCE_METHODS)


def forward_with_cams(
    model: nn.Module,
    input_tensor: torch.Tensor,
    target_layer: nn.Module,
    select: Callable[[torch.Tensor], Sequence[int]],
    autocast: Callable | None = None,
) -> tuple[torch.Tensor, list[int], np.ndarray]:
    """One forward pass -> (logits (1, N), chosen class indices, Grad-CAMs (k, H, W) in [0, 1]).

    ``select`` picks the classes from the logits (e.g. the top-k), so prediction and explanation share
    the same forward pass.
    """
    if input_tensor.ndim != 4 or input_tensor.shape[0] != 1:
        raise ValueError(f"input_tensor must be (1, C, H, W), got {tuple(input_tensor.shape)}")
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        leaf = output.detach().requires_grad_(True)  # (1, C, h, w): graph starts here
        captured.append(leaf)
        return leaf

    handle = target_layer.register_forward_hook(hook)
    try:
        with torch.enable_grad(), autocast() if autocast else _null():
            logits = model(input_tensor)  # (1, N)
    finally:
        handle.remove()
    if len(captured) != 1:
        raise ValueError(f"the CAM layer ran {len(captured)} times in one forward pass; it must run once")
    indices = [int(i) for i in select(logits.detach())]
    cams = _gradcam_from_tail(logits, captured[0], indices)  # (k, h, w)
    return logits.detach().float(), indices, scale_cams(cams, tuple(input_tensor.shape[-2:]))


def compute_cams(
    model: nn.Module, input_tensor: torch.Tensor, class_indices: Sequence[int], target_layer: nn.Module
) -> np.ndarray:
    """Grad-CAM maps for ``class_indices`` from one forward pass.

    Args:
        model: a classifier returning logits (1, N).
        input_tensor: (1, C, H, W) preprocessed image on the model's device.
        class_indices: the k classes to explain.
        target_layer: the module whose output is explained (usually the last feature map).

    Returns:
        (k, H, W) float32 array in [0, 1], upsampled to the input size like pytorch-grad-cam's output.
    """
    _, _, cams = forward_with_cams(model, input_tensor, target_layer, lambda _logits: list(class_indices))
    return cams


def _gradcam_from_tail(logits: torch.Tensor, activations: torch.Tensor, indices: list[int]) -> torch.Tensor:
    """(k, h, w) ReLU(sum_c mean(dlogit/dA_c) * A_c) for each index; backprop covers only the head."""
    if not logits.requires_grad:
        raise ValueError("the CAM layer's output does not reach the logits through differentiable ops")
    maps = []
    for n, index in enumerate(indices):
        (grad,) = torch.autograd.grad(logits[0, index], activations, retain_graph=n < len(indices) - 1)
        weights = grad[0].float().mean(dim=(1, 2))  # (C,)
        maps.append(torch.relu(torch.einsum("c,chw->hw", weights, activations[0].detach().float())))
    return torch.stack(maps) if maps else activations.new_zeros((0, *activations.shape[-2:]))


def scale_cams(cams: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(k, h, w) -> (k, H, W) in [0, 1], as pytorch-grad-cam does: min-max scale, bilinear resize, and
    min-max scale again (upsampling can lower the peak below 1)."""
    scaled = _minmax(cams)
    resized = F.interpolate(scaled[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return _minmax(resized).clamp_(0, 1).cpu().numpy().astype(np.float32)


def _minmax(maps: torch.Tensor) -> torch.Tensor:
    """Per-map (x - min) / (max - min + 1e-7) over the last two dims of a (k, h, w) tensor."""
    flat = maps.reshape(maps.shape[0], -1)
    flat = flat - flat.min(dim=1, keepdim=True).values
    flat = flat / (1e-7 + flat.max(dim=1, keepdim=True).values)
    return flat.reshape(maps.shape)


def reference_cams(
    model: nn.Module,
    input_tensor: torch.Tensor,
    class_indices: Sequence[int],
    target_layer: nn.Module,
    method: str = "gradcam (pytorch-grad-cam)",
) -> np.ndarray:
    """(k, H, W) maps from pytorch-grad-cam, one call per class (the slow, obvious way)."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if method not in REFERENCE_METHODS:
        raise ValueError(f"unknown CAM method {method!r}; choose from {list(METHODS)}")
    cam_class = getattr(pytorch_grad_cam, REFERENCE_METHODS[method])
    # The model's parameters are frozen; an input that requires grad makes every activation differentiable.
    x = input_tensor.detach().clone().requires_grad_(True)
    maps = []
    with cam_class(model=model, target_layers=[target_layer]) as cam:
        for index in class_indices:
            maps.append(cam(input_tensor=x, targets=[ClassifierOutputTarget(int(index))])[0])
    return np.stack(maps).astype(np.float32) if maps else np.zeros((0, *x.shape[-2:]), np.float32)


def overlay_cam(image: np.ndarray, cam: np.ndarray, image_weight: float = 0.5) -> np.ndarray:
    """Heat-map overlay (uint8 RGB, same size as ``image``) of a [0, 1] map on an RGB uint8 image."""
    import cv2
    from pytorch_grad_cam.utils.image import show_cam_on_image

    height, width = image.shape[:2]
    mask = cv2.resize(cam.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return show_cam_on_image(
        image.astype(np.float32) / 255.0, np.clip(mask, 0, 1), use_rgb=True, image_weight=image_weight
    )


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
