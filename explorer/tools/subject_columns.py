"""Add the organism-or-surroundings columns to evaluation tables in place, leaving every other column as it is.

    python -m explorer.tools.subject_columns [--eval-dir assets/eval] [--only inat_bird] [--batch-size 32]

Each photo runs through the model (its top-1 Grad-CAM), through the locator (the Coral ImageNet MobileNetV2's map of
the subject's ImageNet classes) and twice more through the model (the organism blurred away, then the surroundings):
about 0.2 s a photo on 2 CPU cores. explorer.diagnose.surroundings says what each column means.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from explorer.diagnose.causes import rests_on_surroundings, surroundings_by_clade
from explorer.diagnose.frames import select
from explorer.diagnose.schema import save_table
from explorer.diagnose.surroundings import SUBJECT_COLUMNS, load_locator, locator_name, subject_columns
from explorer.identify.scope_check import IMAGENET_GROUPS
from explorer.services.resources import load_classifier_for
from explorer.settings import PROJECT_ROOT, add_model_arguments, settings_from_args
from explorer.tools.cli import one_line_errors


def with_surroundings(table: pd.DataFrame, classifier, settings, batch_size=32, required=True, paths=None):
    """``table`` with the subject columns measured (a progress bar on stderr; ``paths``: each row's photo file,
    default its ``path`` under the data root). When the organism cannot be located (a subject ImageNet has no
    classes for, the locator's file absent): ValueError when ``required``, else the table as it is, said on
    stdout."""
    subject = classifier.card.subject
    try:
        if subject not in IMAGENET_GROUPS:
            raise ValueError(
                f"the organism cannot be located for a model of {subject}s (ImageNet's classes cover "
                f"{', '.join(sorted(IMAGENET_GROUPS))}; set the card's subject)"
            )
        locator = load_locator(settings, locator_name(classifier.card))
    except (ValueError, FileNotFoundError) as err:
        if required:
            raise ValueError(f"no organism-or-surroundings columns: {err}") from err
        print(f"no organism-or-surroundings columns: {err}")
        return table
    with tqdm(total=int((table["status"] == "ok").sum()), desc="surroundings", unit="photo", file=sys.stderr) as bar:
        root = settings.data_root
        return subject_columns(table, classifier, locator, root, subject, batch_size, bar.update, paths=paths)


def surroundings_line(table: pd.DataFrame) -> str:
    """What the columns say, in the dashboard's words: how many measured answers rest on the surroundings (and of
    them, errors), and the species flagged (at least 5 measured photos, half of them resting on the surroundings)."""
    measured = table[table["off_subject_share"].notna()]
    rests = select(measured, rests=rests_on_surroundings().fill_null(False))["rests"].to_numpy()
    wrong = rests & ~measured["correct_1"].fillna(False).astype(bool).to_numpy()
    flagged = surroundings_by_clade(table, "species")
    names = flagged.loc[flagged["flagged"], "species"].tolist()
    return (
        f"{int(rests.sum())} of {len(measured)} measured answers rest on the surroundings ({int(wrong.sum())} of "
        f"them wrong); species recognised by their surroundings (5+ photos): {', '.join(names) or 'none'}"
    )


def extended(path: Path, settings, batch_size: int) -> tuple[pd.DataFrame, str]:
    """(the table at ``path`` with its subject columns measured, what was done)."""
    table = pd.read_parquet(path)
    model = str(table["model"].iloc[0])
    classifier, _ = load_classifier_for(settings, model, table["true_name"].astype(str).unique().tolist())
    if classifier.weights_sha256 != str(table["weights_sha256"].iloc[0]):
        print(f"note: {path.name} was made by other weights than the loaded {model}", file=sys.stderr)
    out = with_surroundings(table, classifier, settings, batch_size)
    unchanged = [c for c in table.columns if c not in SUBJECT_COLUMNS]
    pd.testing.assert_frame_equal(out[unchanged], table[unchanged])
    measured = int(out["off_subject_share"].notna().sum())
    locator = out["subject_locator"].dropna().iloc[0] if measured else "nothing"
    said = f"{path.name}: {measured} of {len(out)} photos measured (organism located by {locator})"
    return out, said + (f"; {surroundings_line(out)}" if measured else "")


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m explorer.tools.subject_columns", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--eval-dir", type=Path, default=PROJECT_ROOT / "assets" / "eval", help="the tables' folder")
    parser.add_argument("--only", action="append", help="only this table (by name; repeatable)")
    parser.add_argument("--batch-size", type=int, default=32, help="photos per forward pass (default 32)")
    args = add_model_arguments(parser).parse_args(argv)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    settings = settings_from_args(args)
    paths = sorted(args.eval_dir.glob("*.parquet"))
    if args.only:
        paths = [p for p in paths if p.stem in set(args.only)]
    if not paths:
        raise ValueError(f"no table to extend in {args.eval_dir}")
    for path in paths:
        start = time.perf_counter()
        table, said = extended(path, settings, args.batch_size)
        save_table(table, path)
        print(f"{said} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
