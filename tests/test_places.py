"""Places: validated input (impossible coordinates and dates refused) and one type for typed and EXIF places."""

import datetime as dt

import pytest

from explorer.photos.places import check_date, check_location


@pytest.mark.parametrize(
    "lat,lon,message",
    [
        (91, 0, "latitude 91.0 is outside"),
        (0, -181, "longitude -181.0"),
        (float("nan"), 0, "finite"),
        ("north", 0, "must be numbers"),
    ],
)
def test_impossible_locations(lat, lon, message):
    with pytest.raises(ValueError, match=message):
        check_location(lat, lon)


def test_dates():
    assert check_date("2024-05-17") == dt.date(2024, 5, 17)
    with pytest.raises(ValueError, match="not a date in the form YYYY-MM-DD"):
        check_date("17/05/2024")
    with pytest.raises(ValueError, match="is in the future"):
        check_date("2030-01-01", today=dt.date(2026, 11, 22))


def test_make_place():
    from explorer.photos.places import make_place

    assert make_place(None, None, "") is None and make_place("", "", None) is None
    place = make_place(50.5, "10.25", "2024-06-01", today=dt.date(2026, 1, 1))
    assert (place.lat, place.lon, place.day_of_year) == (50.5, 10.25, 153.0)
    with pytest.raises(ValueError, match="both latitude and longitude"):
        make_place(50, None)
    assert make_place(None, None, "2024-06-01") is None  # a date alone (EXIF without GPS) is not an error
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        make_place(None, None, "June")
    with pytest.raises(ValueError, match="latitude 123.0 is outside"):
        make_place(123, 0)


def test_place_problems_name_every_bad_field():
    import datetime as dt

    from explorer.photos.places import place_problems

    today = dt.date(2026, 11, 23)
    place, problems = place_problems("95", "200", "yesterday", today)
    assert place is None and problems == {
        "lat": "latitude 95 is outside -90..90",
        "lon": "longitude 200 is outside -180..180",
        "date": "date 'yesterday' is not a date in the form YYYY-MM-DD",
    }
    place, problems = place_problems("43,65", " -79,38 ", "2026-05-01", today)  # comma as the decimal mark
    assert problems == {} and (place.lat, place.lon, place.date) == (43.65, -79.38, dt.date(2026, 5, 1))
    assert place_problems("43.6", "", "", today) == (None, {"lon": "give both latitude and longitude, or neither"})
    assert place_problems("north", "10", "", today)[1] == {"lat": "latitude 'north' is not a number"}
    assert place_problems("", "", "2026-05-01", today) == (None, {})
    assert place_problems("nan", "10", "", today)[1] == {"lat": "latitude nan is outside -90..90"}
