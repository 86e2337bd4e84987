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

from explorer.cam.layout import FeatureLayout

FAST_METHOD = "gradcam"
# Methods computed here for all k classes from one forward pass and one batched backward through the tail, with
# pytorch-grad-cam's own formulas (tests/test_cam.py checks each against it). EigenCAM ignores the class: computed
# once, the same map for every suggestion.
BATCHED_METHODS = (FAST_METHOD, "gradcam++", "xgradcam", "layercam", "hirescam", "eigencam")
CLASS_AGNOSTIC = frozenset({"eigencam"})
# name shown to users -> pytorch-grad-cam class name (the reference implementation, one call per class)
REFERENCE_METHODS = {
    "gradcam (pytorch-grad-cam)": "GradCAM",
    "gradcam++ (pytorch-grad-cam)": "GradCAMPlusPlus",
    "xgradcam (pytorch-grad-cam)": "XGradCAM",
    "layercam (pytorch-grad-cam)": "LayerCAM",
    "eigencam (pytorch-grad-cam)": "EigenCAM",
    "hirescam (pytorch-grad-cam)": "HiResCAM",
}
# The menu: every method, batched. The references stay in the API and Python, to compare (not in the menu: once per
# class they cost 8-13x the batched path on a CPU, and batching their input does not help there: the compute is k
# forward and backward passes either way).
METHODS = BATCHED_METHODS


def forward_with_cams(
    model: nn.Module,
    input_tensor: torch.Tensor,
    target_layer: nn.Module,
    select: Callable[[torch.Tensor], Sequence[int]],
    autocast: Callable | None = None,
    head: nn.Linear | None = None,
    layout: FeatureLayout | None = None,
    method: str = FAST_METHOD,
) -> tuple[torch.Tensor, list[int], np.ndarray]:
    """One forward pass -> (logits (1, N), chosen class indices, CAMs (k, h, w) in [0, 1]) of ``method`` (one of
    BATCHED_METHODS; Grad-CAM by default).

    ``select`` picks the classes from the logits (e.g. the top-k), so prediction and explanation share
    the same forward pass. Maps stay at the CAM layer's resolution (h, w); ``scale_cams`` upsamples them
    to any size exactly as pytorch-grad-cam does.

    ``head``: when the logits are ``head(spatial mean of the CAM layer's output)`` (checked at load time by
    ``check_linear_head``), dlogit_c/dA is the constant W_c / (h w), so no backward pass is needed at all.
    ``layout`` turns the layer's output (tokens, channels-last) into (1, C, h, w), as pytorch-grad-cam's
    ``reshape_transform`` does, for activations and gradients alike.
    """
    if input_tensor.ndim != 4 or input_tensor.shape[0] != 1:
        raise ValueError(f"input_tensor must be (1, C, H, W), got {tuple(input_tensor.shape)}")
    logits, chosen, cams = forward_with_cams_batch(
        model, input_tensor, target_layer, [select], autocast, head, layout, method
    )
    return logits, chosen[0], cams[0]


def forward_with_cams_batch(
    model: nn.Module,
    input_tensor: torch.Tensor,
    target_layer: nn.Module,
    selects: Sequence[Callable[[torch.Tensor], Sequence[int]]],
    autocast: Callable | None = None,
    head: nn.Linear | None = None,
    layout: FeatureLayout | None = None,
    method: str = FAST_METHOD,
) -> tuple[torch.Tensor, list[list[int]], list[np.ndarray]]:
    """``forward_with_cams`` for a batch (B, C, H, W), one ``select`` per photo (given its own logits, (1, N)): one
    forward pass, one batched backward through the tail for every photo's targets (none with ``head``) ->
    (logits (B, N), each photo's classes, each photo's CAMs (k_b, h, w)). Eval mode: photos do not mix, so each
    photo's answer and maps are its own, equal to one-at-a-time up to float rounding (a batched convolution
    may sum in another order)."""
    if method not in BATCHED_METHODS:
        raise ValueError(f"unknown batched CAM method {method!r}; choose from {list(BATCHED_METHODS)}")
    if input_tensor.ndim != 4 or len(selects) != input_tensor.shape[0]:
        raise ValueError(f"one select per photo: {len(selects)} for input {tuple(input_tensor.shape)}")
    logits, activations = forward_capture(model, input_tensor, target_layer, needs_graph(method, head), autocast)
    chosen = [[int(i) for i in select(logits[b : b + 1].detach())] for b, select in enumerate(selects)]
    cams = cams_from_capture(logits, activations, chosen, head, layout, method)
    return logits.detach().float(), chosen, cams


def needs_graph(method: str | None, head: nn.Linear | None) -> bool:
    """Whether ``method``'s maps need a backward pass from the logits to the CAM layer (no: a ``head``, or a map
    that ignores the class)."""
    return method in BATCHED_METHODS and head is None and method not in CLASS_AGNOSTIC


def cams_from_capture(
    logits: torch.Tensor,
    activations: torch.Tensor,
    chosen: list[list[int]],
    head: nn.Linear | None = None,
    layout: FeatureLayout | None = None,
    method: str = FAST_METHOD,
    photos: Sequence[int] | None = None,
    retain_graph: bool = False,
) -> list[np.ndarray]:
    """Each photo's maps (k_b, h, w) of its ``chosen`` classes, from a pass already run (``forward_capture``):
    ``logits`` (n, N), in the graph from ``activations`` (B, ...) when the method needs a backward pass; ``photos``:
    the row of ``activations`` of each logits row (default: the same rows); ``retain_graph`` keeps the graph for
    another model's maps read from the same activations (``models.shared_trunk``)."""
    photos = list(range(len(chosen))) if photos is None else list(photos)
    layout = layout or FeatureLayout()
    spatial = layout(activations.detach()[photos]).float()  # (n, C, h, w)
    grads = None
    if needs_graph(method, head):
        grads = _photo_gradients(logits, activations, chosen, retain_graph)[:, photos]
    cams = []
    for b, indices in enumerate(chosen):
        if head is not None and method != "eigencam":  # constant over the map: W_c / (h w)
            h, w = spatial.shape[-2:]
            rows = head.weight[torch.tensor(indices, dtype=torch.long, device=head.weight.device)].float() / (h * w)
            if method == FAST_METHOD:  # Grad-CAM's weights are these rows themselves
                cams.append(_minmax(torch.relu(torch.einsum("kc,chw->khw", rows, spatial[b]))).cpu().numpy())
                continue
            g = rows[:, :, None, None].expand(-1, -1, h, w)
        else:
            g = None if grads is None else layout(grads[: len(indices), b]).float()  # (k, C, h, w)
        maps = method_cams(method, spatial[b], g)
        maps = maps.expand(len(indices), -1, -1) if method in CLASS_AGNOSTIC else maps
        cams.append(_minmax(maps).cpu().numpy())
    return cams


def _photo_gradients(
    logits: torch.Tensor, activations: torch.Tensor, chosen: list[list[int]], retain_graph: bool = False
) -> torch.Tensor:
    """(k_max, B, ...) d(logit of each photo's j-th class)/dA, for every photo at once: the j-th vector-Jacobian
    product puts a one-hot row on each photo's j-th class (a zero row where a photo has fewer)."""
    k = max((len(c) for c in chosen), default=0)
    rows = torch.zeros((k, *logits.shape), dtype=torch.float32, device=logits.device)  # (k, B, N)
    for b, indices in enumerate(chosen):
        rows[torch.arange(len(indices)), b, torch.tensor(indices, dtype=torch.long)] = 1.0
    return _tail_gradients(logits, activations, rows, batched_rows=True, retain_graph=retain_graph)


def first_component(activations: np.ndarray) -> np.ndarray:
    """(h, w): the (h w, C) activations, centred, projected on their first right singular vector: pytorch-grad-cam's
    ``get_2d_projection``, with the thin SVD (its ``full_matrices=True`` also builds a C x C matrix it never uses:
    ~110 ms of 1280 channels here, against ~10 ms; the same vector, sign included, in LAPACK's output). On one BLAS
    thread: OpenBLAS's idle threads otherwise spin on the cores after the call and slow the next forward pass by
    ~30 ms (measured: Grad-CAM right after EigenCAM took 65 ms instead of 29). torch's SVD gives other signs."""
    from threadpoolctl import threadpool_limits

    a = np.nan_to_num(activations.astype(np.float32)).reshape(activations.shape[0], -1).T
    a = a - a.mean(axis=0)
    with threadpool_limits(1, user_api="blas"):
        _u, _s, vt = np.linalg.svd(a, full_matrices=False)
    return (a @ vt[0]).reshape(activations.shape[1:]).astype(np.float32)


def method_cams(method: str, a: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
    """(k, h, w) maps (before scaling) from the activations ``a`` (C, h, w) and the k gradients ``g`` (k, C, h, w),
    with pytorch-grad-cam's formulas (its ``get_cam_weights`` / ``get_cam_image``), then its ReLU."""
    if method == "eigencam":
        return torch.relu(torch.from_numpy(first_component(a.cpu().numpy())).to(a.device))[None]
    sums = a.sum(dim=(1, 2))[None, :, None, None]  # (1, C, 1, 1)
    if method == "gradcam++":
        g2 = g * g
        aij = g2 / (2 * g2 + sums * g2 * g + 1e-6)
        weights = (torch.relu(g) * torch.where(g != 0, aij, torch.zeros_like(aij))).sum(dim=(2, 3))
    elif method == "xgradcam":
        weights = (g * a[None] / (sums + 1e-7)).sum(dim=(2, 3))
    elif method == "layercam":
        return torch.relu((torch.relu(g) * a[None]).sum(dim=1))
    elif method == "hirescam":
        return torch.relu((g * a[None]).sum(dim=1))
    else:  # gradcam
        weights = g.mean(dim=(2, 3))
    return torch.relu(torch.einsum("kc,chw->khw", weights, a))


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
    logits, activations = forward_capture(model, input_tensor, target_layer, head is None, autocast)
    rows = torch.zeros((3, logits.shape[1]), dtype=torch.float32, device=logits.device)
    rows[0, a], rows[1, b] = 1.0, 1.0
    rows[2, a] += 1.0
    rows[2, b] -= 1.0
    return _minmax(_cams_for_targets(logits, activations, rows, head, layout or FeatureLayout())).cpu().numpy()


def finer_cam(
    model: nn.Module,
    input_tensor: torch.Tensor,
    target_layer: nn.Module,
    index: int,
    layout: FeatureLayout | None = None,
) -> np.ndarray:
    """(H, W) in [0, 1]: pytorch-grad-cam's FinerCAM of class ``index`` against the classes whose logits are nearest
    its own (the library's default: the 2nd to 4th nearest, weighted by their probabilities, alpha 1): what sets
    the answer apart from its closest rivals, where "why a and not b" compares it with one class."""
    from pytorch_grad_cam import FinerCAM

    x = input_tensor.detach().clone().requires_grad_(True)
    transform = layout if layout is not None and layout.kind != "nchw" else None
    with FinerCAM(model=model, target_layers=[target_layer], reshape_transform=transform) as cam:
        return cam(input_tensor=x, target_idx=int(index))[0].astype(np.float32)


def forward_capture(model, input_tensor, target_layer, need_graph: bool, autocast) -> tuple[torch.Tensor, ...]:
    """Logits (B, N) and the target layer's output (B, C, h, w); the graph, if any, starts at that output."""
    if input_tensor.ndim != 4:
        raise ValueError(f"input_tensor must be (B, C, H, W), got {tuple(input_tensor.shape)}")
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


def _cams_for_targets(
    logits, activations, rows: torch.Tensor, head: nn.Linear | None, layout, one_hot: list[int] | None = None
) -> torch.Tensor:
    """(k, h, w) Grad-CAM for k targets, each a weighting of the logits (one-hot, or a difference). ``one_hot``:
    the classes when every row is one class's one-hot row (then the head's rows are gathered, not multiplied)."""
    spatial = layout(activations.detach())[0].float()  # (C, h, w)
    if head is not None:  # logits = head(mean_hw(A)): d(target)/dA = rows @ W / (h w), exactly
        h, w = spatial.shape[-2:]
        if one_hot is not None:  # the same rows of W as the product (0.5 ms for 5 x 965 classes x 1280)
            weights = head.weight[torch.tensor(one_hot, dtype=torch.long, device=head.weight.device)].float() / (h * w)
        else:
            weights = rows @ head.weight.float() / (h * w)  # (k, C)
    else:
        weights = layout(_tail_gradients(logits, activations, rows)).float().mean(dim=(2, 3))  # (k, C)
    return torch.relu(torch.einsum("kc,chw->khw", weights, spatial))


def _tail_gradients(
    logits: torch.Tensor,
    activations: torch.Tensor,
    rows: torch.Tensor,
    batched_rows: bool = False,
    retain_graph: bool = False,
) -> torch.Tensor:
    """(k, ...) gradients of each target w.r.t. the layer's output A (its own layout) of one photo; with
    ``batched_rows``, ``rows`` is (k, B, N) and the result (k, B, ...). Backprop covers only the tail. The k
    vector-Jacobian products run as one batched backward (vmap); tails with ops vmap cannot batch fall back to k
    retained backward passes."""
    if not logits.requires_grad:
        raise ValueError("the CAM layer's output does not reach the logits through differentiable ops")
    if rows.shape[0] == 0:
        return activations.new_zeros((0, *activations.shape[int(not batched_rows) :]))
    grad_outputs = (rows if batched_rows else rows[:, None, :]).to(logits.dtype)  # (k, B, N)
    try:
        (grads,) = torch.autograd.grad(
            logits, activations, grad_outputs=grad_outputs, is_grads_batched=True, retain_graph=retain_graph
        )
    except RuntimeError:
        grads = torch.stack([torch.autograd.grad(logits, activations, g, retain_graph=True)[0] for g in grad_outputs])
    return grads if batched_rows else grads[:, 0]


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
        layout: how that output becomes (1, C, h, w) (``explorer.cam.layout``); None: it already is.

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
    on all k maps at once: ~1.5 ms for five at 384 px instead of ~20 ms, so overlays do not dominate an identify
    call. Maps are taken to be in [0, 1] (values outside are clipped).
    """
    import cv2

    if cams.ndim != 3:
        raise ValueError(f"cams must be (k, h, w), got {cams.shape}")
    height, width = image.shape[:2]
    k = cams.shape[0]
    if k == 0:
        return []
    # each map resized straight into its band of one (k*H, W) strip, then one pass to bytes (rounded, saturated) and
    # the colour map on the whole strip (no transposed copies); each band is then blended with the photo
    cams = np.asarray(cams, dtype=np.float32)
    strip = np.empty((k * height, width), np.float32)
    for i in range(k):
        cv2.resize(cams[i], (width, height), dst=strip[i * height : (i + 1) * height], interpolation=cv2.INTER_LINEAR)
    np.maximum(strip, 0.0, out=strip)  # convertScaleAbs would turn a negative value into its absolute value
    heat = cv2.applyColorMap(cv2.convertScaleAbs(strip, alpha=255), _jet_rgb_lut())  # (k*H, W, 3), RGB
    base = image.astype(np.uint8, copy=False)
    blended = np.empty((k, height, width, 3), np.uint8)
    for i in range(k):  # each band blended with the photo into its own overlay (no k-fold copy of the photo)
        cv2.addWeighted(heat[i * height : (i + 1) * height], 1.0 - image_weight, base, image_weight, 0.0, blended[i])
    return list(blended)


@functools.cache
def _jet_rgb_lut() -> np.ndarray:
    """OpenCV's JET colour map as a (256, 1, 3) RGB lookup table (applyColorMap's own output is BGR)."""
    import cv2

    ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
    return np.ascontiguousarray(cv2.applyColorMap(ramp, cv2.COLORMAP_JET)[:, :, ::-1])


def overlay_cam(image: np.ndarray, cam: np.ndarray, image_weight: float = 0.5) -> np.ndarray:
    """One heat-map overlay of a [0, 1] map (h, w) on an RGB uint8 image."""
    return overlay_cams(image, cam[None], image_weight)[0]
