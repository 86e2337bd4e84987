"""The combination rules explorer-fit-prior measured (checkpoints/geo/combination.json, beside the priors): each
prior's fitted rule, and the model's default prior chosen on the fitting half and checked on the held-out one. A
model or prior the file does not name keeps the plain rule (vision x presence, floor 0.01; BirdNET's species list
at 0.03) and the card's order."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

from explorer.geo.combine import NO_PRIOR, BoundPrior

log = logging.getLogger(__name__)
COMBINATION = Path("geo") / "combination.json"


def fitted_entry(checkpoint_dir: Path, model: str) -> dict | None:
    """The file's entry for ``model``, or None (no file, no entry, or unreadable: logged)."""
    path = Path(checkpoint_dir) / COMBINATION
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8")).get(model)
    except (OSError, ValueError) as err:
        log.warning("%s unreadable, the plain rules are used: %s", path, err)
        return None


def apply_fitted(priors: dict[str, BoundPrior], checkpoint_dir: Path, model: str) -> dict[str, BoundPrior]:
    """The priors with the fitted rules of the file beside them (see ``apply_entry``)."""
    entry = fitted_entry(checkpoint_dir, model)
    return apply_entry(priors, entry) if entry and priors else priors


def apply_entry(priors: dict[str, BoundPrior], entry: dict) -> dict[str, BoundPrior]:
    """The priors with their fitted rules (a prior the fit left to the image alone keeps its plain rule), the
    fitted default first; when the default is the image alone, every prior is kept (a user may still choose one)
    but marked off by default."""
    out = {}
    for name, prior in priors.items():
        fit = (entry.get("priors", {}).get(name) or {}).get("fitted")
        if fit:
            how = f"fitted by explorer-fit-prior: {fit['text']}"
            rule = {k: fit.get(k) for k in ("exponent", "floor", "threshold", "vagrant")}
            prior = replace(prior, **rule, fitted=how)
        out[name] = replace(prior, off_by_default=entry.get("default") == NO_PRIOR)
    default = entry.get("default")
    if default in out:
        out = {default: out[default], **{n: p for n, p in out.items() if n != default}}
    return out
