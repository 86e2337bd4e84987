"""Class activation maps: a fast Grad-CAM for all top-k classes from one forward pass, plus the other
methods of pytorch-grad-cam (the reference implementation) and overlays.

Fast path: a forward hook on the target layer hands the rest of the network a leaf copy of its output
``A`` (B, C, h, w) that requires grad. The trunk's parameters are frozen, so autograd records only the
tail (activation, pooling, linear head). Grad-CAM needs dlogit_c/dA for each class c; backpropagating
through that tiny tail k times costs almost nothing next to the forward pass. The result is exactly
pytorch-grad-cam's GradCAM (same weights = mean gradient, ReLU, min-max scaling, bilinear resize).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from explorer.cam_layout import FeatureLayout

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
    head: nn.Linear | None = None,
    layout: FeatureLayout | None = None,
) -> tuple[torch.Tensor, list[int], np.ndarray]:
    """One forward pass -> (logits (1, N), chosen class indices, Grad-CAMs (k, h, w) in [0, 1]).

    ``select`` picks the classes from the logits (e.g. the top-k), so prediction and explanation share
    the same forward pass. Maps stay at the CAM layer's resolution (h, w); ``scale_cams`` upsamples them
    to any size exactly as pytorch-grad-cam does.

    ``head``: when the logits are ``head(spatial mean of the CAM layer's output)`` (checked at load time by
    ``check_linear_head``), dlogit_c/dA is the constant W_c / (h w), so no backward pass is needed at all.
    ``layout`` turns the layer's output (tokens, channels-last) into (1, C, h, w), as pytorch-grad-cam's
    ``reshape_transform`` does, for activations and gradients alike.
    """
    logits, activations = _forward_capture(model, input_tensor, target_layer, head is None, autocast)
    indices = [int(i) for i in select(logits.detach())]
    rows = torch.zeros((len(indices), logits.shape[1]), dtype=torch.float32, device=logits.device)
    rows[torch.arange(len(indices)), torch.tensor(indices, dtype=torch.long)] = 1.0  # (k, N) one-hot targets
    cams = _cams_for_targets(logits, activations, rows, head, layout or FeatureLayout())
    return logits.detach().float(), indices, _minmax(cams).cpu().numpy()


def contrastive_cams(
    model: nn.Module,
    input_tensor: torch.Tensor,
    target_layer: nn.Module,
    a: int,
    b: int,
    head: nn.Linear | None = None,
    autocast: Callable | None = None,
    layout: FeatureLayout | None = None,
) -> np.ndarray:
    """(3, h, w) in [0, 1]: Grad-CAM of class a, of class b, and of logit_a - logit_b ("why a and not b"),
    all from one forward pass."""
    logits, activations = _forward_capture(model, input_tensor, target_layer, head is None, autocast)
    rows = torch.zeros((3, logits.shape[1]), dtype=torch.float32, device=logits.device)
    rows[0, a], rows[1, b] = 1.0, 1.0
    rows[2, a] += 1.0
    rows[2, b] -= 1.0
    return _minmax(_cams_for_targets(logits, activations, rows, head, layout or FeatureLayout())).cpu().numpy()


def _forward_capture(model, input_tensor, target_layer, need_graph: bool, autocast) -> tuple[torch.Tensor, ...]:
    """Logits (1, N) and the target layer's output (1, C, h, w); the graph, if any, starts at that output."""
    if input_tensor.ndim != 4 or input_tensor.shape[0] != 1:
        raise ValueError(f"input_tensor must be (1, C, H, W), got {tuple(input_tensor.shape)}")
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        leaf = output.detach().requires_grad_(need_graph)
        captured.append(leaf)
        return leaf

    handle = target_layer.register_forward_hook(hook)
    try:
        with torch.set_grad_enabled(need_graph), autocast() if autocast else contextlib.nullcontext():
            logits = model(input_tensor)  # (1, N)
    finally:
        handle.remove()
    if len(captured) != 1:
        raise ValueError(f"the CAM layer ran {len(captured)} times in one forward pass; it must run once")
    return logits, captured[0]


def _cams_for_targets(logits, activations, rows: torch.Tensor, head: nn.Linear | None, layout) -> torch.Tensor:
    """(k, h, w) Grad-CAM for k targets, each a weighting of the logits (one-hot, or a difference)."""
    spatial = layout(activations.detach())[0].float()  # (C, h, w)
    if head is not None:  # logits = head(mean_hw(A)): d(target)/dA = rows @ W / (h w), exactly
        h, w = spatial.shape[-2:]
        weights = rows @ head.weight.float() / (h * w)  # (k, C)
    else:
        weights = _tail_gradient_weights(logits, activations, rows, layout)
    return torch.relu(torch.einsum("kc,chw->khw", weights, spatial))


def _tail_gradient_weights(logits: torch.Tensor, activations: torch.Tensor, rows: torch.Tensor, layout) -> torch.Tensor:
    """(k, C) spatial-mean gradients of each target w.r.t. A; backprop covers only the head.

    The k vector-Jacobian products run as one batched backward (vmap); heads with ops vmap cannot batch
    fall back to k retained backward passes.
    """
    if not logits.requires_grad:
        raise ValueError("the CAM layer's output does not reach the logits through differentiable ops")
    if rows.shape[0] == 0:
        return activations.new_zeros((0, layout(activations.detach()).shape[1]))
    grad_outputs = rows[:, None, :].to(logits.dtype)  # (k, 1, N)
    try:
        (grads,) = torch.autograd.grad(logits, activations, grad_outputs=grad_outputs, is_grads_batched=True)
    except RuntimeError:
        grads = torch.stack([torch.autograd.grad(logits, activations, g, retain_graph=True)[0] for g in grad_outputs])
    return layout(grads[:, 0]).float().mean(dim=(2, 3))  # (k, C)


def check_linear_head(model: nn.Module, target_layer: nn.Module, head: nn.Linear, input_size: int) -> None:
    """Raise ValueError unless the model's logits equal ``head(spatial mean of target_layer's output)``.

    This is what makes the backward-free Grad-CAM exact; a card that declares a wrong head fails at start-up.
    """
    captured = []
    handle = target_layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        with torch.no_grad():
            x = torch.randn(1, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
            logits = model(x.to(next(model.parameters()).device))
    finally:
        handle.remove()
    if len(captured) != 1 or captured[0].ndim != 4 or not isinstance(head, nn.Linear):
        raise ValueError("cam_head must be an nn.Linear fed by the spatial mean of the CAM layer's output")
    if head.in_features != captured[0].shape[1]:
        raise ValueError(f"cam_head takes {head.in_features} features but the CAM layer has {captured[0].shape[1]}")
    with torch.no_grad():
        expected = head(captured[0].mean(dim=(2, 3)))
    if expected.shape != logits.shape or not torch.allclose(expected, logits, atol=1e-4, rtol=1e-4):
        raise ValueError("the model's logits are not cam_head(mean of the CAM layer's output); remove cam_head")


def compute_cams(
    model: nn.Module,
    input_tensor: torch.Tensor,
    class_indices: Sequence[int],
    target_layer: nn.Module,
    layout: FeatureLayout | None = None,
) -> np.ndarray:
    """Grad-CAM maps for ``class_indices`` from one forward pass.

    Args:
        model: a classifier returning logits (1, N).
        input_tensor: (1, C, H, W) preprocessed image on the model's device.
        class_indices: the k classes to explain.
        target_layer: the module whose output is explained (usually the last feature map).
        layout: how that output becomes (1, C, h, w) (``explorer.cam_layout``); None: it already is.

    Returns:
        (k, H, W) float32 array in [0, 1], upsampled to the input size like pytorch-grad-cam's output.
    """
    _, _, cams = forward_with_cams(
        model, input_tensor, target_layer, lambda _logits: list(class_indices), layout=layout
    )
    return scale_cams(torch.from_numpy(cams), tuple(input_tensor.shape[-2:]))


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
    layout: FeatureLayout | None = None,
) -> np.ndarray:
    """(k, H, W) maps from pytorch-grad-cam, one call per class (the slow, obvious way); ``layout`` is its
    ``reshape_transform`` for token and channels-last layers."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if method not in REFERENCE_METHODS:
        raise ValueError(f"unknown CAM method {method!r}; choose from {list(METHODS)}")
    cam_class = getattr(pytorch_grad_cam, REFERENCE_METHODS[method])
    # The model's parameters are frozen; an input that requires grad makes every activation differentiable.
    x = input_tensor.detach().clone().requires_grad_(True)
    maps = []
    transform = layout if layout is not None and layout.kind != "nchw" else None
    with cam_class(model=model, target_layers=[target_layer], reshape_transform=transform) as cam:
        for index in class_indices:
            maps.append(cam(input_tensor=x, targets=[ClassifierOutputTarget(int(index))])[0])
    return np.stack(maps).astype(np.float32) if maps else np.zeros((0, *x.shape[-2:]), np.float32)


def overlay_cams(image: np.ndarray, cams: np.ndarray, image_weight: float = 0.5) -> list[np.ndarray]:
    """Heat-map overlays (uint8 RGB, the size of ``image``) of k maps (any resolution) on an RGB uint8 image.

    The look of pytorch-grad-cam's ``show_cam_on_image`` (JET colour map, 50/50 blend) computed in uint8
    on all k maps at once: ~1 ms for five instead of ~20 ms, so overlays do not dominate an identify call.
    """
    import cv2

    if cams.ndim != 3:
        raise ValueError(f"cams must be (k, h, w), got {cams.shape}")
    height, width = image.shape[:2]
    k = cams.shape[0]
    if k == 0:
        return []
    # one bilinear resize for all k maps (as channels), then the colour map and blend on a (k*H, W) strip
    stacked = np.ascontiguousarray(np.asarray(cams, dtype=np.float32).transpose(1, 2, 0))  # (h, w, k)
    masks = cv2.resize(stacked, (width, height), interpolation=cv2.INTER_LINEAR).reshape(height, width, k)
    masks = np.clip(masks * 255 + 0.5, 0, 255).astype(np.uint8).transpose(2, 0, 1).reshape(k * height, width)
    heat = cv2.applyColorMap(masks, _jet_rgb_lut())  # (k*H, W, 3), RGB
    base = np.tile(image.astype(np.uint8, copy=False), (k, 1, 1))
    blended = cv2.addWeighted(heat, 1.0 - image_weight, base, image_weight, 0.0)
    return list(blended.reshape(k, height, width, 3))


@functools.cache
def _jet_rgb_lut() -> np.ndarray:
    """OpenCV's JET colour map as a (256, 1, 3) RGB lookup table (applyColorMap's own output is BGR)."""
    import cv2

    ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
    return np.ascontiguousarray(cv2.applyColorMap(ramp, cv2.COLORMAP_JET)[:, :, ::-1])


def overlay_cam(image: np.ndarray, cam: np.ndarray, image_weight: float = 0.5) -> np.ndarray:
    """One heat-map overlay of a [0, 1] map (h, w) on an RGB uint8 image."""
    return overlay_cams(image, cam[None], image_weight)[0]
