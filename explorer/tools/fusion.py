"""explorer-fusion: do several photos of one organism help? Pseudo-observations built from a model's evaluation
table (its photos of one species grouped by twos and threes, never a photo twice), each fused by every rule the
Identify tab knows, against one photo alone; written beside the table as NAME.fusion.json, which the results
pages read.

    explorer-fusion --model inat_bird [--table assets/eval/inat_bird.parquet] [--seed 0]

One forward pass per photo (about a minute per 3,000 photos on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from explorer.diagnose.pseudo_observations import SEED, fusion_path, measure, pseudo_observations, save_fusion
from explorer.identify.fusing import log_softmax
from explorer.models.batches import run_logits
from explorer.photos.thumbnails import photo_path
from explorer.settings import add_model_arguments, settings_from_args
from explorer.tools.cli import one_line_errors
from explorer.tools.model_table import add_table_arguments, model_table


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="explorer-fusion",
        description=(__doc__ or "").split("\n\n")[0].split(": ", 1)[1].replace("do", "Do", 1),
    )
    add_table_arguments(parser)
    parser.add_argument("--seed", type=int, default=SEED, help=f"how the photos are grouped (default {SEED})")
    parser.add_argument(
        "--out", type=Path, help="where to write the report (default: NAME.fusion.json beside the table)"
    )
    add_model_arguments(parser)
    return parser


def fusion_report(classifier, table, data_root, seed: int = SEED, progress: bool = True) -> dict:
    """The pseudo-observations' figures for a table's readable photos of species the model knows."""
    start = time.perf_counter()
    usable = table[(table["status"] == "ok") & table["in_vocab"].astype(bool)]
    paths = {i: photo_path(data_root, str(p)) for i, p in zip(usable.index, usable["path"])}
    missing = [i for i, p in paths.items() if p is None]
    usable = usable.drop(index=missing)
    logits, statuses = run_logits(classifier, [str(paths[i]) for i in usable.index], progress=progress)
    read = np.array([s == "ok" for s in statuses], dtype=bool)
    usable, logits = usable[read], logits[read]
    groups = pseudo_observations(usable["true_name"].tolist(), usable["photo_id"].tolist(), seed)
    report = measure(log_softmax(logits), usable["true_class_index"].to_numpy(dtype=int), groups)
    singles = len(usable) - report["photos"]
    return {
        "model": classifier.name,
        "weights_sha256": classifier.weights_sha256,
        "seed": seed,
        "table_rows": len(table),
        "excluded": {
            "unreadable, or a species the model does not know": int(len(table) - len(paths)),
            "photo not on this machine": len(missing),
            "unreadable now": int((~read).sum()),
            "the only photo of its species": int(singles),
        },
        **report,
        "seconds": round(time.perf_counter() - start, 1),
    }


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = settings_from_args(args)
    path, table, classifier = model_table(args, settings)
    report = fusion_report(classifier, table, settings.data_root, args.seed)
    if report["observations"] == 0:
        raise ValueError(f"no species has two photos on this machine in {path} (--data-root?)")
    out = save_fusion(report, args.out or fusion_path(Path(path)))
    one = report["one_photo"]["top1"]
    print(f"{report['observations']} pseudo-observations of {report['photos']} photos; one photo: {one:.1%}")
    for rule, scores in report["rules"].items():
        print(f"  {rule}: top-1 {scores['top1']:.1%}, calibration error {scores['ece']:.3f}")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
