"""The organism or its surroundings? Batched Grad-CAM for any target, the organism's mask from an independent
model's map, the share of a map outside it, and the photo with the organism or its surroundings blurred away.

The organism is located without the model under test: an ImageNet classifier's Grad-CAM of the log-probability of
the subject's ImageNet classes (birds, insects: ``identify.scope_check.IMAGENET_GROUPS``), thresholded at 20 % of
its peak, the threshold with which CAM (Zhou et al. 2016) turned maps into boxes. ``diagnose.surroundings`` picks
an ImageNet model that does not share the tested model's weights.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from explorer.cam.gradcam import forward_capture
from explorer.cam.layout import FeatureLayout
from explorer.cam.perturbation import blurred

MASK_THRESHOLD = 0.2  # of the locator map's peak (CAM's box threshold)
GRID = 56  # maps are compared on a GRID x GRID raster of the input (bilinear, as pytorch-grad-cam upsamples)


def batched_gradcam(
    module: nn.Module,
    batch: torch.Tensor,
    layer: nn.Module,
    target: Callable[[torch.Tensor], torch.Tensor],
    layout: FeatureLayout | None = None,
    autocast: Callable | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (B, N), Grad-CAM maps (B, h, w), not rescaled) of ``target(logits) -> (B,)`` for a batch: one
    forward pass and one backward pass through the layers after ``layer``. Each photo's map is its own (eval mode:
    photos do not mix), so the maps equal one-at-a-time Grad-CAM."""
    logits, activations = forward_capture(module, batch, layer, True, autocast)
    (grads,) = torch.autograd.grad(target(logits.float()).sum(), activations)
    layout = layout or FeatureLayout()
    spatial, grads = layout(activations.detach()).float(), layout(grads).float()
    weights = grads.mean(dim=(2, 3))  # (B, C)
    return logits.detach().float(), torch.relu(torch.einsum("bc,bchw->bhw", weights, spatial))


def top1_target(logits: torch.Tensor) -> torch.Tensor:
    """(B,) each photo's largest logit: Grad-CAM of the model's own answer."""
    return logits.max(dim=1).values


def group_target(indices: list[int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """target(logits) -> (B,) the log of the summed probability of the classes ``indices`` (e.g. ImageNet's birds)."""
    index = torch.tensor(indices, dtype=torch.long)

    def target(logits: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(logits[:, index.to(logits.device)], dim=1) - torch.logsumexp(logits, dim=1)

    return target


def on_grid(maps: torch.Tensor, grid: int = GRID) -> np.ndarray:
    """(B, h, w) -> (B, grid, grid) float64, bilinear."""
    scaled = F.interpolate(maps[:, None].float().cpu(), size=(grid, grid), mode="bilinear", align_corners=False)
    return scaled[:, 0].clamp_(min=0).numpy().astype(np.float64)


def subject_masks(locator_maps: np.ndarray, threshold: float = MASK_THRESHOLD) -> np.ndarray:
    """(B, g, g) bool: where the locator's map reaches ``threshold`` of its peak. A map with no mass (the locator
    sees none of the subject's classes anywhere) gives an empty mask."""
    peak = locator_maps.reshape(len(locator_maps), -1).max(axis=1)[:, None, None]
    return (locator_maps >= threshold * peak) & (peak > 0)


def off_subject_share(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(B,) the share of each map's mass outside its mask; NaN where the map has no mass or the mask is empty."""
    total = maps.reshape(len(maps), -1).sum(axis=1)
    outside = (maps * ~masks).reshape(len(maps), -1).sum(axis=1)
    ok = (total > 0) & masks.reshape(len(masks), -1).any(axis=1)
    return np.where(ok, outside / np.where(total > 0, total, 1.0), np.nan)


def mask_share(masks: np.ndarray) -> np.ndarray:
    """(B,) the share of the photo a mask covers."""
    return masks.reshape(len(masks), -1).mean(axis=1)


def without(batch: torch.Tensor, masks: np.ndarray, keep_inside: bool) -> torch.Tensor:
    """The photos with the organism blurred away (``keep_inside=False``: its mask is replaced by the blurred photo)
    or with the surroundings blurred away (``keep_inside=True``). The masks are resized to the input (nearest)."""
    size = tuple(batch.shape[-2:])
    mask = torch.from_numpy(masks.astype(np.float32))[:, None]
    mask = F.interpolate(mask, size=size, mode="nearest").to(batch)
    if keep_inside:
        mask = 1 - mask  # blur what lies outside the organism
    base = blurred(batch)
    return batch * (1 - mask) + base * mask
