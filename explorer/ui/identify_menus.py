"""The Identify tab's menus and its range map: which models and priors the menus offer, and the map for a species
at a place and week."""

from __future__ import annotations

import html

from explorer.geo.birdnet import week_of_year
from explorer.geo.combine import NO_PRIOR
from explorer.geo.maps import map_iframe
from explorer.photos.places import check_date
from explorer.services.range_maps import range_map_document
from explorer.services.resources import Resources
from explorer.services.routing import AUTO

AUTO_LABEL = "Best model for this photo (chosen by each model's scope check)"
WHOLE_YEAR = 0  # the week slider's "no week": the map for any date


def observation_week(date) -> int:
    """The week slider's start: the observation's week of BirdNET's calendar, or 0 (the whole year)."""
    if not str(date or "").strip():
        return WHOLE_YEAR
    try:
        return int(week_of_year(check_date(date).timetuple().tm_yday))
    except ValueError:
        return WHOLE_YEAR


def range_map_html(resources: Resources, model_name, name, lat=None, lon=None, date=None, prior=None, week=0) -> str:
    """The range map embedded for the page, or a short message saying why there is none."""
    if not name:
        return ""
    try:
        return map_iframe(range_map_document(resources, model_name, name, lat, lon, date, prior, week))
    except ValueError as err:
        return f"<p class='range-map-note'>{html.escape(str(err))}</p>"


def model_choices(resources: Resources) -> tuple[list[tuple[str, str]], str]:
    """The model menu and its default: every loaded model, led by "the best model for this photo" when more than one
    model has a scope rule (and no --model was given)."""
    choices = [(c.card.label, name) for name, c in resources.classifiers.items()]
    default = resources.default_model
    if len(resources.scope_rules) > 1 and not (resources.settings and resources.settings.default_model):
        choices, default = [(AUTO_LABEL, AUTO), *choices], AUTO
    return choices, default


def prior_choices(resources: Resources) -> list[tuple[str, str]]:
    """The geo-prior menu: each model's default, every prior some model offers, or none."""
    offered = {}
    for by_name in resources.priors.values():
        for name, prior in by_name.items():
            offered.setdefault(name, prior.label.split(": ", 1)[-1].split(" (")[0])
    choices = [("Each model's default (the better one measured)", "")]
    choices += [(f"{name}: {text}", name) for name, text in offered.items()]
    return [*choices, ("None: the image alone", NO_PRIOR)]
