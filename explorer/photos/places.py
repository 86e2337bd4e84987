"""Where and when a photo was taken: one validated type for typed places and for what EXIF says."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass


def parse_number(value) -> float:
    """A float from a number or text; a comma works as the decimal mark ('43,65' is 43.65)."""
    if isinstance(value, str):
        value = value.strip().replace(",", ".") if value.count(",") == 1 and "." not in value else value.strip()
    return float(value)


def check_location(lat, lon) -> tuple[float, float]:
    """(lat, lon) as floats, or ValueError saying what is wrong."""
    try:
        lat, lon = parse_number(lat), parse_number(lon)
    except (TypeError, ValueError) as err:
        raise ValueError(f"latitude and longitude must be numbers, got {lat!r} and {lon!r}") from err
    if math.isnan(lat) or math.isnan(lon) or math.isinf(lat) or math.isinf(lon):
        raise ValueError("latitude and longitude must be finite numbers (got NaN or infinity)")
    if not -90.0 <= lat <= 90.0:
        raise ValueError(f"latitude {lat} is outside -90..90")
    if not -180.0 <= lon <= 180.0:
        raise ValueError(f"longitude {lon} is outside -180..180")
    return lat, lon


def check_date(value, today: dt.date | None = None) -> dt.date:
    """A date from 'YYYY-MM-DD' (or a date/datetime); ValueError for text that does not parse or a future day."""
    if isinstance(value, dt.datetime):
        day = value.date()
    elif isinstance(value, dt.date):
        day = value
    else:
        try:
            day = dt.date.fromisoformat(str(value).strip()[:10])
        except ValueError as err:
            raise ValueError(f"date {value!r} is not a date in the form YYYY-MM-DD") from err
    today = today or dt.date.today()
    if day > today:
        raise ValueError(f"date {day.isoformat()} is in the future (today is {today.isoformat()})")
    return day


@dataclass(frozen=True)
class Place:
    """Where and when a photo was taken: validated input, or what its EXIF says (None where nothing usable;
    ``note`` says why, e.g. "no GPS position in EXIF")."""

    lat: float | None = None
    lon: float | None = None
    date: dt.date | None = None
    note: str = ""

    @property
    def located(self) -> bool:
        return self.lat is not None and self.lon is not None

    @property
    def day_of_year(self) -> float:
        return float(self.date.timetuple().tm_yday) if self.date else float("nan")


def make_place(lat=None, lon=None, date=None, today: dt.date | None = None) -> Place | None:
    """A Place from optional user input; None when no location is given. Clear ValueErrors otherwise."""
    blank = lambda v: v is None or (isinstance(v, str) and not v.strip())  # noqa: E731
    if blank(lat) and blank(lon):
        if not blank(date):
            check_date(date, today)  # still say so if it is malformed; a date alone is otherwise unused
        return None
    if blank(lat) or blank(lon):
        raise ValueError("give both latitude and longitude, or neither")
    lat, lon = check_location(lat, lon)
    return Place(lat, lon, None if blank(date) else check_date(date, today))


def place_problems(lat=None, lon=None, date=None, today: dt.date | None = None) -> tuple[Place | None, dict[str, str]]:
    """(the place, or None when absent or wrong; a message per wrong field: 'lat', 'lon', 'date'), so a form
    can say what is wrong beside each field and still identify from the image alone."""
    blank = lambda v: v is None or (isinstance(v, str) and not v.strip())  # noqa: E731
    problems: dict[str, str] = {}
    values = {}
    for key, value, limit, word in (("lat", lat, 90.0, "latitude"), ("lon", lon, 180.0, "longitude")):
        if blank(value):
            continue
        try:
            number = parse_number(value)
        except (TypeError, ValueError):
            problems[key] = f"{word} {str(value)!r} is not a number"
            continue
        if not math.isfinite(number) or abs(number) > limit:
            problems[key] = f"{word} {number:g} is outside -{limit:g}..{limit:g}"
        else:
            values[key] = number
    if not blank(date):
        try:
            values["date"] = check_date(date, today)
        except ValueError as err:
            problems["date"] = str(err)
    if not problems and (blank(lat) != blank(lon)):
        problems["lon" if blank(lon) else "lat"] = "give both latitude and longitude, or neither"
    if problems or "lat" not in values:
        return None, problems
    return Place(values["lat"], values["lon"], values.get("date")), problems
