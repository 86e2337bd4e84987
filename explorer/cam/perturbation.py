"""Can you trust the map? How much a class's probability depends on the pixels its CAM points at.

Three measures, each over the softmax probability of the explained class:

- **ROAD** (pytorch-grad-cam's own metrics, Rong et al. 2022): the pixels above a percentile of the map removed
  (*most relevant first*, MoRF) or those below it (*least relevant first*, LeRF) and filled in by its noisy linear
  imputation, averaged over ``ROAD_PERCENTILES``; the change in probability. A faithful map: MoRF very negative,
  LeRF near 0, ``combined`` = (LeRF − MoRF) / 2 high. ROAD favours smooth, blob-like maps: removing a blob is
  easy to see, while a sharp map's scattered pixels are filled in from their neighbours.
- **Deletion / insertion** (Petsiuk et al. 2018): the pixels removed (deletion) or put back (insertion) in the
  map's order, ``CURVE_STEPS`` steps from none to all, into a blurred copy of the photo (``BLUR_SIGMA``); the area
  under the probability curve. Low deletion and high insertion: the map's order matters to the model.
- **The map against the same area elsewhere** (the inspector's, per photo): the probability with the map's top
  ``REMOVED_SHARE`` of pixels blurred, against the same number of the map's lowest pixels blurred.

Torch and pytorch-grad-cam only; the maps are (n, H, W) in [0, 1] at the input's size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

ROAD_PERCENTILES = (20, 40, 60, 80)
CURVE_STEPS = 10  # deletion and insertion: 0 %, 10 %, ..., 100 % of the pixels
BLUR_SIGMA = 10.0  # px at the input size: what a removed pixel becomes in the curves and the inspector's check
REMOVED_SHARE = 0.2


@dataclass(frozen=True)
class RoadScores:
    morf: np.ndarray  # (n,) change in probability, most relevant removed first (more negative: more faithful)
    lerf: np.ndarray  # (n,) least relevant removed first (nearer 0: more faithful)

    @property
    def combined(self) -> np.ndarray:
        return (self.lerf - self.morf) / 2


def road_scores(model, tensor: torch.Tensor, cams: np.ndarray, classes, percentiles=ROAD_PERCENTILES) -> RoadScores:
    """pytorch-grad-cam's ROAD, MoRF and LeRF averaged over ``percentiles``, of each map (``cams[i]`` explains
    ``classes[i]`` on ``tensor``, one photo (1, C, H, W) or one per map (n, C, H, W))."""
    from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirstAverage, ROADMostRelevantFirstAverage
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    batch = _per_map(tensor, len(cams))
    targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in classes]
    maps = np.ascontiguousarray(cams, dtype=np.float32)
    with torch.no_grad():
        morf = ROADMostRelevantFirstAverage(list(percentiles))(batch, maps, targets, model)
        lerf = ROADLeastRelevantFirstAverage(list(percentiles))(batch, maps, targets, model)
    return RoadScores(np.asarray(morf, np.float64).reshape(-1), np.asarray(lerf, np.float64).reshape(-1))


def _per_map(tensor: torch.Tensor, n: int) -> torch.Tensor:
    return tensor.expand(n, -1, -1, -1) if tensor.shape[0] == 1 else tensor


def blurred(tensor: torch.Tensor, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """A Gaussian blur of (n, C, H, W), channel by channel, edges replicated."""
    radius = max(1, int(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).to(tensor)
    c = tensor.shape[1]
    out = F.pad(tensor, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _order(cam: np.ndarray) -> np.ndarray:
    """Pixel positions, most relevant first (ties in raster order)."""
    return np.argsort(-cam.reshape(-1), kind="stable")


def _probability(model, batch: torch.Tensor, index: int) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(batch).float(), dim=1)[:, int(index)].cpu().numpy().astype(np.float64)


def deletion_insertion(
    model, tensor: torch.Tensor, cam: np.ndarray, index: int, steps: int = CURVE_STEPS
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(deletion AUC, insertion AUC, the two curves): the probability of class ``index`` as the map's pixels, most
    relevant first, are blurred (deletion) or restored into the blurred photo (insertion); one batch per curve."""
    photo, base = tensor[:1], blurred(tensor[:1])
    order = _order(cam)
    h, w = cam.shape
    counts = [round(k * h * w / steps) for k in range(steps + 1)]
    masks = torch.zeros((steps + 1, 1, h, w), dtype=photo.dtype)
    flat = masks.view(steps + 1, -1)
    for k, count in enumerate(counts):
        flat[k, order[:count]] = 1.0  # 1: the pixel is taken from the other image
    deleted = photo * (1 - masks) + base * masks
    inserted = base * (1 - masks) + photo * masks
    deletion, insertion = _probability(model, deleted, index), _probability(model, inserted, index)
    return _area(deletion), _area(insertion), deletion, insertion


def _area(curve: np.ndarray) -> float:
    """The area under a curve sampled at equal steps from 0 to 1 (trapezoids)."""
    return float(((curve[1:] + curve[:-1]) / 2).mean())


@dataclass(frozen=True)
class RemovalCheck:
    probability: float  # of the explained class on the photo
    without_map: float  # with the map's top REMOVED_SHARE of pixels blurred
    without_elsewhere: float  # with the same number of the map's lowest pixels blurred
    share: float

    @property
    def drop(self) -> float:
        return self.probability - self.without_map

    @property
    def drop_elsewhere(self) -> float:
        return self.probability - self.without_elsewhere


def removal_check(
    model, tensor: torch.Tensor, cam: np.ndarray, index: int, share: float = REMOVED_SHARE
) -> RemovalCheck:
    """The probability of class ``index`` on the photo, with the map's top ``share`` of pixels blurred, and with
    the same number of its lowest pixels blurred instead: one batch of three."""
    photo, base = tensor[:1], blurred(tensor[:1])
    order = _order(cam)
    count = round(share * cam.size)
    masks = torch.zeros((3, 1, *cam.shape), dtype=photo.dtype)
    masks.view(3, -1)[1, order[:count]] = 1.0
    masks.view(3, -1)[2, order[len(order) - count :]] = 1.0
    probs = _probability(model, photo * (1 - masks) + base * masks, index)
    return RemovalCheck(float(probs[0]), float(probs[1]), float(probs[2]), share)


@dataclass(frozen=True)
class Arcc:
    """pytorch-grad-cam's ARCC and its parts, per map (Rong et al.'s ROAD combined with Complexity and Coherency)."""

    complexity: np.ndarray  # the map's mean value (L1 per pixel), 0..1: lower is a sparser map
    coherency: np.ndarray  # (Pearson r of the map and the map recomputed on photo x map, + 1) / 2: higher is better
    arcc: np.ndarray  # 3 / (1/coherency + 1/(1 - complexity) + 1/clip(2 ROAD combined, 0, 1)): higher is better


def arcc_scores(tensor: torch.Tensor, cams: np.ndarray, recompute, road_combined: np.ndarray) -> Arcc:
    """ARCC of each map ``cams[i]`` (n, H, W) on one photo (1, C, H, W): ``recompute(i, masked photo)`` gives map
    i's method's map of the same class on the photo multiplied by that map (pytorch-grad-cam's Coherency), and
    ``road_combined`` the maps' ROAD combined (measured once, not again). pytorch-grad-cam's Complexity and Pearson
    coherency, and its ARCC formula."""
    from pytorch_grad_cam.metrics.arcc import Complexity, batch_pearson_coherency

    maps = np.ascontiguousarray(cams, dtype=np.float32)
    complexity = Complexity()(maps).astype(np.float64)
    masked = [tensor[:1] * torch.from_numpy(maps[i]).to(tensor)[None, None] for i in range(len(maps))]
    again = np.stack([recompute(i, m) for i, m in enumerate(masked)]).astype(np.float32)
    coherency = ((batch_pearson_coherency(again, maps) + 1) / 2).astype(np.float64)
    road = np.clip(2 * np.asarray(road_combined, np.float64), 0, 1)
    arcc = 3 / (1 / (coherency + 1e-8) + 1 / ((1 - complexity) + 1e-8) + 1 / (road + 1e-8))
    return Arcc(complexity, coherency, arcc)
