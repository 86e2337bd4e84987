"""Why one error happened, with the evidence (the inspector and the API's ``why``), and a table's errors with their
causes (the API's ``errors``): the tests of explorer.diagnose.causes run over the whole table, and the label
check's evidence read from the row: the label's probability against its usual level, confident learning's verdict,
the nearest labelled neighbours, and what the other tables holding the same photo (by content) say of its label."""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from explorer.diagnose.causes import ANY, BY_LABEL, CAUSES, NO_CAUSE, ORDERS, caused_errors, tested, with_causes
from explorer.diagnose.frames import ROW
from explorer.diagnose.label_issues import LABEL_RANKS
from explorer.diagnose.schema import PHOTO_HASH, SUBJECT_SCHEMA, read_photo_columns
from explorer.identify.present import format_probability
from explorer.services.resources import Resources, table_paths
from explorer.taxa.synonymy import load_synonyms

SHOWN_NEIGHBOURS = 3  # neighbours whose photos the inspector shows (with the photo and 4 maps: 8; all 10 listed)
SUBJECT_COLUMNS = tuple(SUBJECT_SCHEMA)


@dataclass(frozen=True)
class Neighbour:
    photo_id: str
    photo_path: str  # not "path": gradio_client would take the record for a file to download
    label: str
    similarity: float
    shares: str  # the deepest rank its label shares with the photo's ("" none of species..order)


@dataclass(frozen=True)
class LabelEvidence:
    score: float | None  # label_issue_score (None: not scored)
    rank: str  # the coarsest rank at which the label looks wrong ("": none)
    label_probability: float | None
    usual_level: float | None  # the label's class's usual probability on this table
    confident_learning: bool
    confident_learning_guess: str  # the class it points to ("" none)
    neighbours: list[Neighbour]
    agreement: dict[str, float]  # {rank: share of the neighbours in the label's clade}
    other_tables: dict[str, dict]  # {table: {"label": its label of the same photo, "score": its label_issue_score}}


@dataclass(frozen=True)
class ErrorCauses:
    table: str
    photo_id: str
    true_name: str  # the photo's label in this table
    is_error: bool
    causes: list[dict]  # [{"cause", "test"}]: what the tests found
    untested: list[str]  # causes the table cannot answer
    label: LabelEvidence | None  # None: the table has no label check
    surroundings: dict | None = None  # the organism-or-surroundings columns (None: not measured for the table)


def error_causes(resources: Resources, table: str, position: int) -> ErrorCauses:
    """The causes of the error at row ``position`` of ``table`` and the label check's evidence; KeyError for an
    unknown table or row."""
    frame = resources.frame(table)
    if not 0 <= int(position) < len(frame):
        raise KeyError(f"table {table!r} has no row {position}")
    found = with_causes(frame).filter(pl.col(ROW) == int(position))
    row = frame.row(int(position), named=True)
    causes = []
    if len(found):
        flags = found.row(0, named=True)
        causes = [{"cause": c.label, "test": c.test} for c in tested(frame) if flags.get(f"cause_{c.key}")]
    untested = [c.label for c in CAUSES if c not in tested(frame)]
    evidence = _label_evidence(resources, table, row) if "label_issue_score" in row else None
    label = str(row.get("true_name") or "")
    measured = {c: _plain(row[c]) for c in SUBJECT_COLUMNS if c in row} or None
    return ErrorCauses(table, str(row["photo_id"]), label, bool(len(found)), causes, untested, evidence, measured)


def _plain(value):
    """A table value as JSON takes it: NaN as None, numpy scalars as Python's."""
    if isinstance(value, float | np.floating):
        return _finite(value)
    return value.item() if isinstance(value, np.generic) else value


def find_row(resources: Resources, table: str, photo_id: str) -> int:
    """The position of ``photo_id`` in ``table``; KeyError naming both when absent."""
    frame = resources.frame(table)
    hit = frame.filter(pl.col("photo_id") == str(photo_id)).select(ROW)
    if not len(hit):
        raise KeyError(f"table {table!r} has no photo {photo_id!r}")
    return int(hit[ROW][0])


def _finite(value) -> float | None:
    return None if value is None or not np.isfinite(float(value)) else float(value)


def _label_evidence(resources: Resources, table: str, row: dict) -> LabelEvidence:
    frame = resources.frame(table)
    stored = _stored_neighbours(resources, table, str(row["photo_id"]))
    ids = [str(p) for p in (stored.get("label_neighbours") or [])]
    sims = [float(s) for s in (stored.get("label_neighbour_sims") or [])]
    columns = ["photo_id", "path", "true_name", *(f"true_{r}" for r in LABEL_RANKS)]
    found = (
        frame.filter(pl.col("photo_id").is_in(ids)).select(columns).with_columns(pl.col(pl.Categorical).cast(pl.String))
    )
    by_id = {r["photo_id"]: r for r in found.iter_rows(named=True)}
    neighbours = [
        Neighbour(i, str(by_id[i]["path"]), str(by_id[i]["true_name"]), round(s, 4), _shares(row, by_id[i]))
        for i, s in zip(ids, sims)
        if i in by_id
    ]
    agreement = {
        r: (sum(n_row[f"true_{r}"] == row.get(f"true_{r}") for n_row in by_id.values()) / len(by_id)) if by_id else 0.0
        for r in LABEL_RANKS
    }
    guess = -1 if row.get("label_cl_guess") is None else int(row["label_cl_guess"])
    return LabelEvidence(
        score=_finite(row.get("label_issue_score")),
        rank=str(row.get("label_issue_rank") or ""),
        label_probability=_finite(row.get("true_prob")),
        usual_level=_finite(row.get("label_class_level")),
        confident_learning=bool(row.get("label_cl_flag")),
        confident_learning_guess=_class_name(frame, guess) if guess >= 0 else "",
        neighbours=neighbours,
        agreement={r: round(v, 4) for r, v in agreement.items()},
        other_tables=_other_tables(resources, table, row.get(PHOTO_HASH)),
    )


def _stored_neighbours(resources: Resources, table: str, photo_id: str) -> dict:
    """The photo's neighbours as its table file stores them (the dashboard's copy leaves the lists out)."""
    path = table_paths(resources.settings.eval_dirs).get(table) if resources.settings else None
    return read_photo_columns(path, photo_id, ["label_neighbours", "label_neighbour_sims"]) if path else {}


def _shares(row: dict, other: dict) -> str:
    for rank in LABEL_RANKS:  # species first: the deepest shared rank
        if row.get(f"true_{rank}") is not None and other.get(f"true_{rank}") == row.get(f"true_{rank}"):
            return rank
    return ""


def _class_name(frame: pl.DataFrame, index: int) -> str:
    """A class index's name, as the table writes it (its truths or top-1s); the index when neither names it."""
    for side in ("true", "pred"):
        hit = frame.filter(pl.col(f"{side}_class_index") == index).select(f"{side}_name").head(1)
        if len(hit):
            return str(hit[0, 0])
    return f"class {index}"


def _other_tables(resources: Resources, table: str, photo_hash) -> dict[str, dict]:
    """{another table holding the same photo (by content): {"label": its label of the photo, "score": its
    label_issue_score of that label}}: the other table's own label, which may not be this one's."""
    if not photo_hash:
        return {}
    out = {}
    for name in resources.tables:
        other = resources.frame(name)
        if name == table or PHOTO_HASH not in other.columns or "label_issue_score" not in other.columns:
            continue
        hit = other.filter(pl.col(PHOTO_HASH) == photo_hash).select("true_name", "label_issue_score").head(1)
        if len(hit):
            out[name] = {"label": str(hit[0, 0]), "score": _finite(hit[0, 1])}
    return out


def causes_html(found: ErrorCauses) -> str:
    """The inspector's "why this error" block (escaped)."""
    esc = html.escape
    if not found.is_error:
        head = "<p><b>Why:</b> this photo is not an error of this table.</p>"
    elif found.causes:
        items = "".join(f"<li><b>{esc(c['cause'])}</b>: {esc(c['test'])}</li>" for c in found.causes)
        head = f"<p><b>Why this error, most likely</b> (each test that found a cause):</p><ul>{items}</ul>"
    else:
        head = f"<p><b>Why:</b> {NO_CAUSE}; none of the tests explains this error.</p>"
    if found.untested:
        head += f"<p><small>Not tested on this table: {esc(', '.join(found.untested))}.</small></p>"
    return head + (_label_html(found.label, found.true_name) if found.label is not None else "")


def _other_html(table: str, other: dict, label: str) -> str:
    """What another table says of the same photo: its own label and that label's score."""
    esc = html.escape
    score = "not scored" if other["score"] is None else f"score {other['score']:.2f}"
    synonyms = load_synonyms()
    agree = synonyms.canonical(other["label"]) == synonyms.canonical(label)  # names match through synonyms
    same = "the same label" if agree else f"labelled <i>{esc(other['label'])}</i> there"
    return f"<code>{esc(table)}</code>: {same}, {score}"


def _label_html(evidence: LabelEvidence, label: str = "") -> str:
    esc = html.escape
    if evidence.score is None:
        return "<p><b>Label check:</b> not scored (the model has no class for this label).</p>"
    level = (
        "" if evidence.usual_level is None else f" (its usual level here: {format_probability(evidence.usual_level)})"
    )
    given = "" if evidence.label_probability is None else format_probability(evidence.label_probability)
    wrong = f", wrong up to the {esc(evidence.rank)}" if evidence.rank else ""
    cl = (
        f"off the diagonal, pointing to <i>{esc(evidence.confident_learning_guess)}</i>"
        if evidence.confident_learning
        else "on the diagonal (no confident other class)"
    )
    agree = ", ".join(f"{r} {round(100 * v)} %" for r, v in evidence.agreement.items())
    others = "; ".join(_other_html(t, o, label) for t, o in evidence.other_tables.items())
    return (
        f"<p><b>Label check:</b> score <b>{evidence.score:.2f}</b>{wrong}. The model gives the label {given}{level}; "
        f"confident learning: {cl}. Its {len(evidence.neighbours)} nearest photos share the label's clade: {agree}."
        + (f" The same photo (by content) in other tables: {others}." if others else "")
        + "</p>"
    )


def neighbour_captions(evidence: LabelEvidence | None) -> list[tuple[str, str]]:
    """(path, caption) of the nearest neighbours the inspector shows."""
    if evidence is None:
        return []
    return [
        (n.photo_path, f"neighbour {i}: {n.label} (cos {n.similarity:.2f})")
        for i, n in enumerate(evidence.neighbours[:SHOWN_NEIGHBOURS], start=1)
    ]


def errors_json(resources: Resources, table: str, cause: str = ANY, order: str = ORDERS[0], limit: int = 50) -> dict:
    """A table's errors with ``cause`` (ANY, a cause's label, or NO_CAUSE) as JSON: each with its causes and label
    score; ValueError for an unknown table, cause or order."""
    if table not in resources.tables:
        raise ValueError(f"no evaluation table {table!r}; the tables are {sorted(resources.tables)}")
    if cause not in (ANY, NO_CAUSE, *BY_LABEL):
        raise ValueError(f"cause must be one of {[ANY, *BY_LABEL, NO_CAUSE]}, got {cause!r}")
    frame = resources.frame(table)
    only = [
        c
        for c in ("photo_id", "path", "true_name", "pred_name", "confidence", "label_issue_score", "off_subject_share")
        if c in frame.columns
    ]
    rows = caused_errors(frame, cause, order, limit=max(1, min(int(limit), 1000)), only=only)
    tests = {c.label: c.test for c in CAUSES}
    listed = [
        {
            **{
                _key(k): (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items() if k in only
            },
            "causes": [{"cause": c, "test": tests.get(c, "")} for c in str(r["causes"]).split("; ") if c != NO_CAUSE],
        }
        for r in rows.to_dict("records")
    ]
    return {
        "table": table,
        "cause": cause,
        "order": order,
        "tested": [c.label for c in tested(frame)],
        "errors": listed,
    }


def _key(column: str) -> str:
    """A column's key in the JSON: "path" would make gradio_client take the record for a file to download."""
    return "photo_path" if column == "path" else column


def why_json(resources: Resources, table: str, photo_id: str) -> dict:
    """``error_causes`` of one photo as JSON; ValueError for an unknown table or photo."""
    if table not in resources.tables:
        raise ValueError(f"no evaluation table {table!r}; the tables are {sorted(resources.tables)}")
    try:
        return asdict(error_causes(resources, table, find_row(resources, table, photo_id)))
    except KeyError as err:
        raise ValueError(str(err.args[0])) from err
