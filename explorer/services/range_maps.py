"""Range maps: a standalone (offline) map document of one species' predicted range from a model's geo-prior, at
a week of the year, with the place pinned."""

from __future__ import annotations

import math

from explorer.geo.birdnet import week_of_year
from explorer.photos.places import check_date, make_place
from explorer.services.resources import Resources


def range_map_document(
    resources: Resources, model: str | None, name: str, lat=None, lon=None, date=None, prior=None, week=None
) -> str:
    """A standalone (offline) folium map of one species' predicted range at a week of the year (BirdNET's 48-week
    calendar; None: the observation's week when a date is given, else the whole year; 0: the whole year), with
    the place pinned when given. ``prior``: the geo-prior's name (None: the model's default). Raises ValueError
    with a message for the user (no prior, unknown species, impossible place or week)."""
    classifier = resources.get(model)
    bound = resources.prior(classifier.name, prior)
    if bound is None:
        raise ValueError(f"{classifier.name} has no geo-prior in use, so there is no range map.")
    mapper = resources.mappers[classifier.name][bound.name]
    index = next((i for i, lab in enumerate(classifier.labels) if lab.scientific_name == name), None)
    if index is None:
        raise ValueError(f"{name!r} is not one of {classifier.name}'s classes: no range to show.")
    taxon = int(bound.alignment[index])
    if taxon < 0:
        raise ValueError(f"the geo-prior {bound.name} does not know {name} (not even by a synonym): no range to show.")
    place = make_place(lat, lon, date)
    day = (
        place.day_of_year
        if place is not None
        else check_date(date).timetuple().tm_yday
        if str(date or "").strip()
        else math.nan
    )
    chosen = map_week(week, day)
    label = classifier.labels[index]
    title = f"{label.common_name} ({name})" if label.common_name else name
    if bound.taxa[taxon] != name:
        title += f" = {bound.taxa[taxon]} in {bound.name}"
    return mapper.html(taxon, title, place.lat if place else None, place.lon if place else None, chosen)


def map_week(week, day_of_year: float) -> int | None:
    """The week a range map shows: the one asked (1..48; 0 for the whole year), else the observation's (its day of
    year; NaN: no date, the whole year)."""
    if week in (None, "") and not math.isnan(day_of_year):
        return int(week_of_year(day_of_year))
    if week in (None, "", 0):
        return None
    try:
        value = float(week)
    except (TypeError, ValueError):
        raise ValueError(f"week {week!r} is not a number from 1 to 48 (0: the whole year)") from None
    if value != int(value) or not 0 <= value <= 48:
        raise ValueError(f"week {week!r} is not a whole number from 1 to 48 (0: the whole year)")
    return int(value) or None
