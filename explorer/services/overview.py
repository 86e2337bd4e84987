"""The models overview: the loaded models with their sources, preprocessing and licences, their geo-priors, and
the ones that could not load (Markdown, names escaped)."""

from __future__ import annotations

import html

from explorer.services.resources import Resources


def models_markdown(resources: Resources) -> str:
    """The loaded models with their sources and licences, their geo-priors, and the ones that could not load."""
    esc = html.escape
    lines = ["## Loaded models", ""]
    for name, c in resources.classifiers.items():
        card = c.card
        lines.append(
            f"- **{esc(card.label)}** (`{esc(name)}`): {len(c.labels)} classes, {esc(card.architecture)}, "
            f"CAM layer `{esc(c.cam_layer_name)}` ({esc(c.cam_layer_why)}), on {c.device}. "
            f"Preprocessing: {card.input_size} px, {_framing(card.crop_pct)}, mean {card.mean}, std {card.std}. "
            f"Licence: {esc(card.license or 'not given in the card')}. "
            f"Source: {esc(card.source or 'not given in the card')}"
        )
    if resources.priors:
        lines += ["", "## Geo-priors", ""]
        lines += [
            _prior_line(resources, name, prior, i == 0)
            for name, by_name in resources.priors.items()
            for i, prior in enumerate(by_name.values())
        ]
    if resources.unavailable:
        lines += ["", "## Not available", ""]
        lines += [f"- `{esc(n)}`: {esc(why)}" for n, why in resources.unavailable.items()]
    return "\n".join(lines)


def _framing(crop_pct: float) -> str:
    return "the whole photo" if crop_pct >= 1 else f"the central square of {crop_pct:.0%} of the short side"


def _prior_line(resources: Resources, name: str, prior, default: bool) -> str:
    esc = html.escape
    classes = [lab for lab in resources.classifiers[name].labels if not lab.is_background]
    where = prior.path.name if prior.path else "?"
    metrics = prior.metrics
    trained = (
        f"{int(prior.known.sum())} of its {len(prior.taxa)} taxa with records; held-out site MAP "
        f"{metrics['held_out_site_map']:.3f} (location-blind {metrics.get('location_blind_map', float('nan')):.3f}). "
        if "held_out_site_map" in metrics
        else f"{len(prior.taxa)} taxa. "
    )
    return (
        f"- `{esc(name)}` → **{esc(prior.name)}**{' (default)' if default else ''}: {esc(prior.label)}; "
        f"`{esc(where)}`, {trained}{int(prior.usable.sum())} of this model's {len(classes)} species matched by "
        f"name through synonyms (the rest get a neutral factor). Credit: {esc(prior.credit)}."
    )
