"""Look at the card and table folders again without a restart: new or changed model cards and evaluation tables
are loaded, gone ones dropped, and what did not change is kept as it was loaded (no model is read twice)."""

from __future__ import annotations

import dataclasses
import html
import threading
import time
from dataclasses import dataclass

from explorer.services.resources import Resources, load_resources
from explorer.services.stamps import model_key, table_key

RELOAD_LOCK = threading.Lock()  # one reload at a time
KEPT_AS_IS = ("examples",)  # staged by the app at start-up (ui.demo.stage_examples): not folders it reloads


@dataclass(frozen=True)
class Reloaded:
    """What a reload found, by kind and name ("model my_tits", "table my_tits"), and how long it took."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    seconds: float

    def markdown(self) -> str:
        """What changed, for the page (names escaped)."""
        parts = [
            f"{what} {', '.join(f'`{html.escape(n)}`' for n in names)}"
            for what, names in (("added", self.added), ("changed", self.changed), ("removed", self.removed))
            if names
        ]
        if not parts:
            return f"Nothing new or changed in the card and table folders ({self.seconds:.1f} s)."
        return f"Looked again in {self.seconds:.1f} s: " + "; ".join(parts) + "."


def reload_resources(resources: Resources) -> Reloaded:
    """Load the folders again into ``resources`` (in place, so every handler sees the new models and tables) and
    say what changed. ValueError, with ``resources`` left as it was, when nothing could be loaded."""
    with RELOAD_LOCK:
        start = time.perf_counter()
        fresh = load_resources(resources.settings, previous=resources)
        before, after = _loaded(resources), _loaded(fresh)
        changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
        for field in dataclasses.fields(Resources):
            if field.name not in KEPT_AS_IS:
                setattr(resources, field.name, getattr(fresh, field.name))
        resources.warm_maps()  # a new prior's land grid, in the background
        elapsed = time.perf_counter() - start
        return Reloaded(
            tuple(sorted(after.keys() - before.keys())),
            tuple(changed),
            tuple(sorted(before.keys() - after.keys())),
            elapsed,
        )


def _loaded(resources: Resources) -> dict[str, tuple]:
    """'model NAME' / 'table NAME' -> the stamp of what is loaded (models that failed to load are not counted)."""
    models = {f"model {n}": resources.stamps.get(model_key(n), ()) for n in resources.classifiers}
    return {**models, **{f"table {n}": resources.stamps.get(table_key(n), ()) for n in resources.tables}}
