"""What the results pages read (the shipped files only) and how they write numbers.

Every figure on the pages in docs/results/ comes from these files through the package's own functions
(explorer.diagnose, explorer.represent), the ones the dashboard uses, so the pages and the dashboard agree.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from explorer.diagnose.metrics import Filters, filter_table
from explorer.diagnose.schema import load_table
from explorer.represent.taxonomy_fit import load_representation, representation_path

TABLES = ("inat_bird", "inat_insect", "cub100_effnet_head", "cub100_effnet_taxsmooth")
# the tables' photo sets (their ``source``) as the pages name them
SOURCE_NAMES = {"birds525-valid": "BIRDS-525 validation", "cub100-test": "CUB-100 test", "leeds-butterflies": "Leeds"}
STRICT = Filters(exclude_noted=True)  # the dashboard's default: photos with a doubtful label left out
STRICT_KNOWN = Filters(exclude_noted=True, in_vocab_only=True)


@dataclass(frozen=True)
class Sources:
    """The shipped files the pages are written from."""

    tables: dict[str, pd.DataFrame]  # assets/eval/NAME.parquet
    representation: dict[str, dict]  # assets/eval/NAME.representation.json
    scope_rules: dict[str, dict]  # checkpoints/scope/NAME.json
    geo_metadata: dict[str, dict]  # checkpoints/geo/inat_bird.safetensors: data, metrics (JSON in its header)
    prior_comparison: dict  # checkpoints/geo/prior_comparison.json
    rank_heads: dict  # checkpoints/rank_heads/cub100_effnet_head.json
    cards: dict[str, dict]  # checkpoints/NAME.json
    synonyms: pd.DataFrame  # explorer/taxa/data/synonyms.csv
    embeddings: dict = field(default_factory=dict)  # NAME -> EmbeddingStore beside the table (or borrowed), or None
    label_checks: dict = field(default_factory=dict)  # assets/eval/label_checks.csv: path -> (verdict, what it shows)
    faithfulness: dict = field(default_factory=dict)  # assets/eval/NAME.faithfulness.json (explorer-faithfulness)
    fusion: dict = field(default_factory=dict)  # assets/eval/NAME.fusion.json (explorer-fusion)
    combination: dict = field(default_factory=dict)  # checkpoints/geo/combination.json (explorer-fit-prior)
    duplicates: dict = field(default_factory=dict)  # assets/eval/NAME.duplicates.csv (python -m ...duplicate_photos)
    shortcut: dict = field(default_factory=dict)  # assets/eval/shortcut_experiment.json ({} when not run)


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _safetensors_header(path: Path) -> dict[str, dict]:
    """The JSON metadata of a safetensors file (its header), without loading any tensor."""
    with open(path, "rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
    return {key: json.loads(value) for key, value in header.get("__metadata__", {}).items()}


def load_sources(eval_dir: Path, checkpoint_dir: Path) -> Sources:
    """Read every shipped file the pages need; FileNotFoundError naming the first one missing."""
    from explorer.diagnose.map_faithfulness import faithfulness_path, load_faithfulness
    from explorer.diagnose.pseudo_observations import fusion_path, load_fusion
    from explorer.taxa.synonymy import SYNONYMS_FILE
    from explorer.tools.label_columns import table_embeddings

    needed = [eval_dir / f"{name}.parquet" for name in TABLES]
    needed += [checkpoint_dir / "geo" / "inat_bird.safetensors", checkpoint_dir / "geo" / "prior_comparison.json"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"missing shipped file(s): {', '.join(missing)}")
    tables = {name: load_table(eval_dir / f"{name}.parquet") for name in TABLES}
    reports = {
        name: load_representation(representation_path(eval_dir / f"{name}.parquet"))
        for name in TABLES
        if representation_path(eval_dir / f"{name}.parquet").is_file()
    }
    scope_dir = checkpoint_dir / "scope"
    return Sources(
        tables=tables,
        representation=reports,
        scope_rules={p.stem: _json(p) for p in sorted(scope_dir.glob("*.json"))},
        geo_metadata=_safetensors_header(checkpoint_dir / "geo" / "inat_bird.safetensors"),
        prior_comparison=_json(checkpoint_dir / "geo" / "prior_comparison.json"),
        combination=_json(checkpoint_dir / "geo" / "combination.json")
        if (checkpoint_dir / "geo" / "combination.json").is_file()
        else {},
        rank_heads=_json(checkpoint_dir / "rank_heads" / "cub100_effnet_head.json"),
        cards={name: _json(checkpoint_dir / f"{name}.json") for name in TABLES if name.startswith("cub")},
        synonyms=pd.read_csv(SYNONYMS_FILE),
        embeddings={name: table_embeddings(eval_dir / f"{name}.parquet") for name in TABLES},
        label_checks=_label_checks(eval_dir / "label_checks.csv"),
        duplicates={
            name: pd.read_csv(eval_dir / f"{name}.duplicates.csv")
            for name in TABLES
            if (eval_dir / f"{name}.duplicates.csv").is_file()
        },
        shortcut=_json(shortcut) if (shortcut := eval_dir / "shortcut_experiment.json").is_file() else {},
        faithfulness={
            name: report
            for name in TABLES
            if (report := load_faithfulness(faithfulness_path(eval_dir / f"{name}.parquet"))) is not None
        },
        fusion={
            name: report
            for name in TABLES
            if (report := load_fusion(fusion_path(eval_dir / f"{name}.parquet"))) is not None
        },
    )


def _label_checks(path: Path) -> dict[str, tuple[str, str]]:
    """{photo path: (verdict, what the photo shows)} of the photos looked at by eye (none without the file)."""
    if not path.is_file():
        return {}
    checks = pd.read_csv(path, dtype=str, keep_default_na=False)
    return {r.path: (r.verdict, r[2]) for r in checks.itertuples(index=False)}


def strict(table: pd.DataFrame, known: bool = False) -> pd.DataFrame:
    """The photos without a doubtful label (and, with ``known``, of species the model has a class for)."""
    return filter_table(table, STRICT_KNOWN if known else STRICT)


def by_source(table: pd.DataFrame, source: str) -> pd.DataFrame:
    return table[table["source"].astype(str) == source]


def pct(value: float, digits: int = 1) -> str:
    """A share as a percentage ('97.3 %'); 'n/a' for NaN."""
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.{digits}f} %"


def num(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def signed_points(value: float) -> str:
    """A difference of two shares in percentage points ('+6.7', '−7.5')."""
    text = f"{100 * value:+.1f}"
    return text.replace("-", "−")


def count(value: int) -> str:
    return f"{int(value):,}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join([*lines, *("| " + " | ".join(map(str, row)) + " |" for row in rows)])


def page(title: str, *parts: str) -> str:
    """A page: its title, the generated-from note, and the parts separated by blank lines."""
    note = (
        "<!-- Generated by `explorer-results` from assets/eval/ and checkpoints/: do not edit by hand; change "
        "explorer/tools/results*.py and run `explorer-results`. -->"
    )
    return "\n\n".join([note, f"# {title}", *(p.strip() for p in parts if p and p.strip())]) + "\n"
