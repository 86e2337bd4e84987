"""The Diagnose tab's state, by name: the filters every chart obeys (``DashboardFilters``), what one page remembers
between events (``DashboardSession``), and the one adapter that reads both from an event's values
(``DashboardInputs``). A new filter is one field here and one component under the same name in its section's
builder; the adapter refuses to build a dashboard whose names differ, so a missed one fails at start-up instead of
shifting the other values."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import gradio as gr

from explorer.diagnose.causes import ANY as ANY_CAUSE
from explorer.diagnose.causes import ORDERS as ERROR_ORDERS
from explorer.diagnose.metrics import Filters
from explorer.ui.changed import Sent
from explorer.ui.components import clamp

NO_COMPARISON = "(none)"  # the second table's menu entry for no comparison
ALL_RANKS = "(all)"  # the clade rank's menu entry for no clade filter
ALL_SETS = "(every photo set)"  # the photo-set menu's entry for no photo-set filter


@dataclass(frozen=True)
class DashboardFilters:
    """The values of the dashboard's controls, each field named as its control, with the page's defaults (the
    page opens on the default model's table and the first geo-prior any table holds; ``geo_prior`` None: the
    table's own)."""

    table: str = ""
    clade_rank: str = ALL_RANKS
    clade: str | None = None  # a clade of ``clade_rank``, listed by the clade menu
    min_conf: float = 0.0  # top-1 confidence range
    max_conf: float = 1.0
    outcome: str = "all"  # all, correct or incorrect photos
    exclude_noted: bool = True  # leave out photos with doubtful labels
    in_vocab: bool = False  # only species the model knows
    photo_set: str = ALL_SETS  # only the photos of one set (the table's source)
    list_rank: str = "family"  # the clade tables' rank
    min_photos: int = 5  # the fewest photos a clade needs to be listed
    geo_kind: str = "fixed"  # the photos the geo-prior fixed, broke, ...
    other: str | None = NO_COMPARISON  # the second table to compare with
    map_rank: str = "family"  # the rank that colours the representation map
    geo_prior: str | None = None  # whose fixes and breaks the geo section shows
    report_rank: str = "species"  # the rank of the per-class table and the confusion matrix
    cause: str = ANY_CAUSE  # the errors the gallery shows: every one, or those with one cause
    error_order: str = ERROR_ORDERS[0]  # the gallery's order: most confident first, or label most doubtful first

    def metric_filters(self) -> Filters:
        """These filters as ``explorer.diagnose.metrics`` takes them (a clade only once a rank and a clade are
        chosen)."""
        rank = self.clade_rank if self.clade_rank and self.clade_rank != ALL_RANKS and self.clade else None
        return Filters(
            clade_rank=rank,
            clade_name=self.clade if rank else None,
            min_confidence=float(self.min_conf),
            max_confidence=float(self.max_conf),
            outcome=self.outcome,
            exclude_noted=bool(self.exclude_noted),
            in_vocab_only=bool(self.in_vocab),
            photo_set=None if self.photo_set in (None, "", ALL_SETS) else self.photo_set,
        )

    def clamped(self) -> tuple[DashboardFilters, str, str]:
        """(these filters with both confidences moved into 0..1, why the min was moved, why the max was moved;
        "" when it was not)."""
        (low, low_note), (high, high_note) = clamp(self.min_conf, 0, 1), clamp(self.max_conf, 0, 1)
        return replace(self, min_conf=low, max_conf=high), low_note, high_note


DEFAULTS = DashboardFilters()  # the values the controls open with (the builders read them here)


@dataclass(frozen=True)
class DashboardSession:
    """What one page remembers between events. Each value is its own gr.State, named as its field, because
    different events write them and may run at once: the map section's opening (``map_open``), the filters'
    handler (``clade_key``: the table and rank whose clades the clade menu lists) and every handler that draws
    (``sent``: what the page shows, see explorer.ui.changed)."""

    map_open: bool = False
    clade_key: str = ""
    sent: Sent = field(default_factory=Sent)


NEW_SESSION = DashboardSession()  # a page's before its first event


# a control's value as its field's type (a slider sends 5.0 for 5 photos); the annotations are strings here
CASTS = {"int": int, "float": float, "bool": bool}


def _gather(kind: type, components: Mapping[str, Any], values: Mapping) -> Any:
    """A ``kind`` (a dataclass) of the values of ``components`` ({field name: component}) in ``values``
    ({component: value})."""
    read = {}
    for f in fields(kind):
        value = values[components[f.name]]
        cast = CASTS.get(str(f.type))
        read[f.name] = cast(value) if cast is not None and value is not None else value
    return kind(**read)


def check_names(kind: type, components: Mapping[str, Any]) -> None:
    """ValueError unless ``components`` has exactly one component per field of ``kind``, under its name."""
    names = {f.name for f in fields(kind)}
    missing, extra = sorted(names - set(components)), sorted(set(components) - names)
    if missing or extra:
        raise ValueError(
            f"{kind.__name__} and its components differ: fields without a component {missing}, components "
            f"without a field {extra}. A filter is one field of {kind.__name__} and one component of that name."
        )


@dataclass(frozen=True)
class DashboardInputs:
    """The dashboard's controls and session states by name. An event takes them as one set, so Gradio calls its
    handler with one dict {component: value}, which the wrappers below read into the dataclasses: handlers take
    ``DashboardFilters`` (and ``DashboardSession``) and never see positions."""

    controls: Mapping[str, gr.components.Component]  # {DashboardFilters field: its control}
    states: Mapping[str, gr.State]  # {DashboardSession field: its state}

    def __post_init__(self):
        check_names(DashboardFilters, self.controls)
        check_names(DashboardSession, self.states)

    @property
    def components(self) -> set:
        """Every control and state: the ``inputs`` of an event whose handler reads both."""
        return {*self.controls.values(), *self.states.values()}

    def read(self, values: Mapping) -> tuple[DashboardFilters, DashboardSession]:
        """The filters and the session in an event's values ({component: value})."""
        return _gather(DashboardFilters, self.controls, values), _gather(DashboardSession, self.states, values)

    def opening(self) -> DashboardFilters:
        """The filters the page opens with: the controls' own values."""
        return _gather(DashboardFilters, self.controls, {c: c.value for c in self.controls.values()})

    def handler(self, fn: Callable[[DashboardFilters, DashboardSession], Any]) -> Callable[[dict], Any]:
        """Gradio's handler of ``fn(filters, session)`` (its inputs: ``components``)."""
        return lambda values: fn(*self.read(values))

    def filters_handler(self, fn: Callable[[DashboardFilters], Any]) -> Callable[[dict], Any]:
        """Gradio's handler of ``fn(filters)`` (its inputs: ``components``)."""
        return lambda values: fn(self.read(values)[0])

    def select_handler(self, fn: Callable[[DashboardFilters, gr.SelectData], Any]) -> Callable:
        """Gradio's handler of a select event, ``fn(filters, event)`` (its inputs: ``components``)."""

        def on_select(values: dict, evt: gr.SelectData):
            return fn(self.read(values)[0], evt)

        return on_select
