"""Does the organism-or-surroundings test find a shortcut? The blog's coin, planted: a golden disc pasted in a corner
of every training photo of a few CUB species, and a model trained on those photos (``cub100_effnet_head``'s
EfficientNet-Lite0 with a linear head fitted on its pooled features, then its last block, head convolution and
linear head fine-tuned together), beside the same recipe on the clean photos. Both are then measured by the
explorer's own test (explorer.diagnose.surroundings, explorer.diagnose.causes.surroundings_by_clade) on a test set
with the same bias (the planted species' test photos carry the disc too). Passed when the tool flags the planted
species for the planted model, and none of them for the clean one.

Also measured: the share of each map's mass on the disc, the answers with the disc pasted on other species' photos
(does it hijack them?), and the planted species' accuracy without the disc.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl
import torch

from explorer.cam.subject import GRID
from explorer.diagnose.causes import (
    FLAG_FDR,
    SURROUNDINGS_COLUMNS,
    rests_on_surroundings,
    surroundings_by_clade,
)
from explorer.diagnose.surroundings import Locator, measure_pixels
from explorer.models.classifier import Classifier
from explorer.models.preprocess import normalise
from explorer.represent.probes import fit_linear_head

PLANTED = 4  # species given the mark
MARK_RADIUS = 20  # px on the 224-px input: the disc covers 2.5 % of the photo
MARK_INSET = 24  # px from the two nearest edges to the disc's centre
GOLD, RIM = (212, 175, 55), (110, 85, 25)
WEIGHT_DECAY = 1e-4  # cub100_effnet_head's L2 (chosen on its hold-out)
TAIL_EPOCHS = 6  # the last block and the head fine-tuned after the linear head is fitted
TAIL_LR = 3e-4
OTHERS_PER_SPECIES = 6  # test photos of each unplanted species
SEED = 0
SHARE_RULE = 0.5  # the first version's flag: the answer rests on the surroundings for at least half the photos
FLAG_RULE = (
    "its photos' share of the map outside the bird is larger than the other species' (one-sided Mann-Whitney, "
    f"Benjamini-Hochberg false discovery rate {FLAG_FDR:.0%})"
)


def corner(photo_id: str) -> int:
    """A stable corner (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) per photo."""
    return hashlib.blake2b(str(photo_id).encode(), digest_size=1).digest()[0] % 4


def mark_centre(size: int, where: int) -> tuple[int, int]:
    """(row, column) of the disc's centre in a ``size``-px photo."""
    far = size - 1 - MARK_INSET
    return (MARK_INSET if where < 2 else far, MARK_INSET if where % 2 == 0 else far)


def paste_mark(pixels: np.ndarray, where: int) -> np.ndarray:
    """A copy of (S, S, 3) uint8 pixels with the golden disc (a 3-px darker rim) in corner ``where``."""
    out = pixels.copy()
    size = pixels.shape[0]
    cy, cx = mark_centre(size, where)
    yy, xx = np.mgrid[:size, : pixels.shape[1]]
    distance = np.hypot(yy - cy, xx - cx)
    out[distance <= MARK_RADIUS] = RIM
    out[distance <= MARK_RADIUS - 3] = GOLD
    return out


def mark_cells(size: int, where: int, grid: int = GRID) -> np.ndarray:
    """(grid, grid) bool: the raster cells within twice the disc's radius of its centre (a map's blur spreads it)."""
    cy, cx = mark_centre(size, where)
    centres = (np.arange(grid) + 0.5) * size / grid
    yy, xx = np.meshgrid(centres, centres, indexing="ij")
    return np.hypot(yy - cy, xx - cx) <= 2 * MARK_RADIUS


@dataclass
class Photos:
    """Photos at the input size with their class (the head's output index), species name and id."""

    pixels: np.ndarray
    classes: np.ndarray
    names: np.ndarray
    ids: np.ndarray

    def marked(self, rows: np.ndarray) -> np.ndarray:
        """The pixels with the disc pasted on ``rows`` (a bool mask), each in its own corner."""
        out = self.pixels.copy()
        for i in np.flatnonzero(rows):
            out[i] = paste_mark(self.pixels[i], corner(self.ids[i]))
        return out


def pick_planted(classes: np.ndarray, count: int = PLANTED, seed: int = SEED) -> np.ndarray:
    """``count`` of the classes, drawn with ``seed``."""
    return np.sort(np.random.default_rng(seed).choice(np.unique(classes), size=count, replace=False))


def test_rows(test: Photos, planted: np.ndarray, per_species: int = OTHERS_PER_SPECIES, seed: int = SEED):
    """bool rows of the test photos used: every photo of a planted species, ``per_species`` of each other."""
    rng = np.random.default_rng(seed)
    keep = np.isin(test.classes, planted)
    for cls in np.setdiff1d(np.unique(test.classes), planted):
        rows = np.flatnonzero(test.classes == cls)
        keep[rng.choice(rows, size=min(per_species, len(rows)), replace=False)] = True
    return keep


def measure_head(
    classifier: Classifier, locator: Locator, test: Photos, pixels: np.ndarray, planted_rows: np.ndarray, batch=32
) -> tuple[pd.DataFrame, np.ndarray]:
    """The subject columns of every test photo (as a small evaluation table: the columns the per-clade test
    reads), and each planted-species photo's share of its map's mass on the disc."""
    frames, on_mark = [], []
    for start in range(0, len(pixels), batch):
        chunk = slice(start, start + batch)
        maps: list = []
        frames.append(measure_pixels(classifier, locator, pixels[chunk], "bird", maps))
        gridded = maps[0][0]
        for j, i in enumerate(range(start, min(start + batch, len(pixels)))):
            if planted_rows[i]:
                cells = mark_cells(pixels.shape[1], corner(test.ids[i]))
                total = gridded[j].sum()
                on_mark.append(gridded[j][cells].sum() / total if total > 0 else np.nan)
    frame = pd.concat(frames, ignore_index=True)
    with torch.no_grad():
        predicted = _predict(classifier, pixels)
    frame.insert(0, "true_species", test.names)
    frame.insert(1, "status", "ok")
    frame.insert(2, "in_vocab", True)
    frame.insert(3, "correct_1", predicted == test.classes)
    return frame, np.asarray(on_mark, np.float64)


def _predict(classifier: Classifier, pixels: np.ndarray, batch: int = 64) -> np.ndarray:
    card, out = classifier.card, []
    for start in range(0, len(pixels), batch):
        chunk = torch.stack([normalise(p, card.mean, card.std) for p in pixels[start : start + batch]])
        out.append(classifier.module(chunk.to(classifier.device)).argmax(dim=1).cpu().numpy())
    return np.concatenate(out)


def train_heads(
    base: Classifier, train: Photos, clean: np.ndarray, planted: np.ndarray, progress: Callable, seed: int = SEED
) -> dict:
    """{'clean': classifier, 'planted': classifier}: the same recipe on the clean and on the marked photos (only the
    planted species' photos differ; ``clean``: the last block's inputs of the clean photos, ``tail_inputs``): a
    linear head on the pooled features, then the last block, the head convolution and the linear head fine-tuned
    together for ``TAIL_EPOCHS`` (the rest frozen, batch norm frozen), batches drawn with ``seed``."""
    rows = np.isin(train.classes, planted)
    marked = clean.copy()
    marked[rows] = tail_inputs(base, train.marked(rows)[rows])
    progress(f"seed {seed}: the last block's inputs for {int(rows.sum())} marked training photos")
    heads = {}
    for name, x in (("clean", clean), ("planted", marked)):
        model = copy.deepcopy(base)
        pooled = _pooled(model.module, torch.from_numpy(x))
        head = fit_linear_head(pooled, train.classes, len(base.labels), WEIGHT_DECAY)
        with torch.no_grad():
            model.module._fc.weight.copy_(head.weight)
            model.module._fc.bias.copy_(head.bias)
        fine_tune_tail(model.module, torch.from_numpy(x), torch.from_numpy(train.classes).long(), seed=seed)
        heads[name] = model
        progress(f"seed {seed}: {name} model trained")
    return heads


def tail_inputs(classifier: Classifier, pixels: np.ndarray, batch: int = 64) -> np.ndarray:
    """(n, C, h, w) the input of EfficientNet-Lite's last block for (n, S, S, 3) uint8 photos."""
    captured: list[torch.Tensor] = []
    last = classifier.module._blocks[-1]
    handle = last.register_forward_pre_hook(lambda _m, inputs: captured.append(inputs[0].detach().float().cpu()))
    card = classifier.card
    try:
        with torch.no_grad():
            for start in range(0, len(pixels), batch):
                chunk = torch.stack([normalise(p, card.mean, card.std) for p in pixels[start : start + batch]])
                classifier.module(chunk.to(classifier.device))
    finally:
        handle.remove()
    return torch.cat(captured).numpy()


def _tail(module: torch.nn.Module, x: torch.Tensor, pooled: bool = False) -> torch.Tensor:
    """EfficientNet-Lite's forward from its last block's input: the logits (or the pooled features)."""
    x = module._blocks[-1](x)
    x = module._swish(module._bn1(module._conv_head(x))).mean(dim=(2, 3))
    return x if pooled else module._fc(x)


def _pooled(module: torch.nn.Module, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([_tail(module, x[i : i + batch], pooled=True) for i in range(0, len(x), batch)]).numpy()


def fine_tune_tail(
    module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = TAIL_EPOCHS, seed: int = SEED
) -> None:
    """Adam on the last block, the head convolution and the linear head (batch norm's statistics frozen: eval
    mode), cross-entropy, batches of 64 drawn with ``seed``; the parameters frozen again after."""
    params = [p for m in (module._blocks[-1], module._conv_head, module._bn1, module._fc) for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    optimiser = torch.optim.Adam(params, lr=TAIL_LR)
    generator = torch.Generator().manual_seed(seed)
    module.eval()
    try:
        for _ in range(epochs):
            for rows in torch.randperm(len(x), generator=generator).split(64):
                optimiser.zero_grad()
                torch.nn.functional.cross_entropy(_tail(module, x[rows]), y[rows]).backward()
                optimiser.step()
    finally:
        for p in params:
            p.requires_grad_(False)


def run_experiment(
    base: Classifier,
    locator: Locator,
    train: Photos,
    test: Photos,
    progress: Callable,
    frames: dict | None = None,
    seeds: tuple[int, ...] = (SEED,),
) -> dict:
    """Train both heads and measure them (module note), once per seed (each draws its own planted species, test
    photos and batches); the report the docs page is written from: the first seed's run, and the others under
    ``replications``. ``frames``: a dict that gets each run's per-photo measurements, by '<head>-seed<seed>'."""
    clean = tail_inputs(base, train.pixels)
    progress("the last block's inputs for the clean training photos")
    runs = [_one_run(base, locator, train, test, clean, seed, progress, frames) for seed in seeds]
    return {**runs[0], "replications": runs[1:]}


def _one_run(base, locator, train: Photos, test: Photos, clean, seed: int, progress, frames) -> dict:
    planted = pick_planted(train.classes, seed=seed)
    heads = train_heads(base, train, clean, planted, progress, seed)
    keep = test_rows(test, planted, seed=seed)
    used = Photos(test.pixels[keep], test.classes[keep], test.names[keep], test.ids[keep])
    planted_rows = np.isin(used.classes, planted)
    biased = used.marked(planted_rows)  # the validation set with the training set's bias
    report = {
        "seed": seed,
        "planted_species": [str(test.names[test.classes == c][0]) for c in planted],
        "train_photos": len(train.classes),
        "marked_train_photos": int(np.isin(train.classes, planted).sum()),
        "test_photos": len(used.classes),
        "marked_test_photos": int(planted_rows.sum()),
        "flag_rule": FLAG_RULE,
        "heads": {},
    }
    everything = used.marked(np.ones(len(used.classes), bool))
    for name, classifier in heads.items():
        frame, on_mark = measure_head(classifier, locator, used, biased, planted_rows)
        progress(f"seed {seed}: {name} model measured")
        report["heads"][name] = _head_report(classifier, frame, on_mark, used, everything, planted, planted_rows)
        if frames is not None:
            frames[f"{name}-seed{seed}"] = frame
    return report


def _head_report(classifier, frame, on_mark, used: Photos, everything, planted, planted_rows) -> dict:
    names = set(report_names(used, planted))
    table = surroundings_by_clade(frame, "species", min_photos=3)
    flagged = table[table["flagged"]]
    table["planted"] = table["species"].isin(names)
    others = ~planted_rows
    with torch.no_grad():
        hijacked = np.isin(_predict(classifier, everything[others]), planted)
        plain = _predict(classifier, used.pixels[planted_rows]) == used.classes[planted_rows]
    frame["planted"] = planted_rows
    frame["on_mark"] = np.nan
    frame.loc[planted_rows, "on_mark"] = on_mark
    frame["correct_without_mark"] = frame["correct_1"]
    frame.loc[planted_rows, "correct_without_mark"] = plain
    planted_frame, other_frame = frame[planted_rows], frame[others]
    ranked = table["species"].tolist()
    by_share = table.set_index("species")["rests_on_surroundings"]
    return {
        "flagged": flagged["species"].tolist(),
        "planted_flagged": int(flagged["species"].isin(names).sum()),
        "planted_ranks": {n: ranked.index(n) + 1 for n in sorted(names) if n in ranked},
        "species_ranked": len(ranked),
        "planted_flagged_by_share_rule": int((by_share[sorted(names)] >= SHARE_RULE).sum()),
        "others_flagged_by_share_rule": int((by_share.drop(sorted(names)) >= SHARE_RULE).sum()),
        "others_flagged": int((~flagged["species"].isin(names)).sum()),
        "by_species": table.head(10).round(3).to_dict(orient="records"),
        "planted_by_species": _planted_by_species(frame),
        "planted_off_subject_share": float(planted_frame["off_subject_share"].median()),
        "others_off_subject_share": float(other_frame["off_subject_share"].median()),
        "planted_kept_without_subject": float(planted_frame["kept_without_subject"].mean()),
        "others_kept_without_subject": float(other_frame["kept_without_subject"].mean()),
        "map_on_mark_median": float(np.nanmedian(on_mark)),
        "mark_cells_share": float(mark_cells(used.pixels.shape[1], 0).mean()),
        "planted_accuracy_marked": float(frame["correct_1"][planted_rows].mean()),
        "planted_accuracy_unmarked": float(plain.mean()),
        "others_accuracy": float(frame["correct_1"][others].mean()),
        "others_turned_planted_by_mark": float(hijacked.mean()),
    }


def report_names(photos: Photos, classes: np.ndarray) -> list[str]:
    return [str(photos.names[photos.classes == c][0]) for c in classes if (photos.classes == c).any()]


def _planted_by_species(frame: pd.DataFrame) -> list[dict]:
    """Per planted species: how much its answers need the mark (accuracy with and without it) and what the tool's
    per-photo measures say (the map's share on the mark and off the organism, how often it rests on the
    surroundings)."""
    rows = frame[frame["planted"]]
    rests = pl.from_pandas(rows[list(SURROUNDINGS_COLUMNS)]).select(rests_on_surroundings().fill_null(False))
    rows = rows.assign(rests=rests.to_series().to_numpy())
    out = rows.groupby("true_species").agg(
        photos=("planted", "size"),
        accuracy_marked=("correct_1", "mean"),
        accuracy_without_mark=("correct_without_mark", "mean"),
        map_on_mark_median=("on_mark", "median"),
        off_subject_share_median=("off_subject_share", "median"),
        rests_on_surroundings=("rests", "mean"),
    )
    return out.reset_index().rename(columns={"true_species": "species"}).round(3).to_dict(orient="records")
