"""Times as a coordinator types them into the Prefect UI or the CLI: read in the region's
zone, with the real offset of that day, and never silently off by an hour."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hytetu.errors import StateError
from hytetu.localtime import parse_local

HELSINKI = ZoneInfo("Europe/Helsinki")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # A date alone is that morning's tick, at the offset of that day (summer time).
        ("2025-10-02", "2025-10-02T07:00:00+03:00"),
        ("2.10.2025", "2025-10-02T07:00:00+03:00"),
        # After the change in October the same hour is +02:00.
        ("2025-11-03", "2025-11-03T07:00:00+02:00"),
        ("2025-10-02 07:00", "2025-10-02T07:00:00+03:00"),
        ("2.10.2025 7.00", "2025-10-02T07:00:00+03:00"),
        ("02.10.2025 klo 7.30", "2025-10-02T07:30:00+03:00"),
        ("2025-10-02T07:00", "2025-10-02T07:00:00+03:00"),
        # An explicit offset is kept as the same instant.
        ("2025-10-02T04:00:00+00:00", "2025-10-02T07:00:00+03:00"),
        ("2025-10-02T07:00:00+02:00", "2025-10-02T08:00:00+03:00"),
    ],
)
def test_a_local_date_or_time_reads_in_the_regions_zone(given: str, expected: str) -> None:
    assert parse_local(given, HELSINKI) == datetime.fromisoformat(expected)
    assert parse_local(given, HELSINKI).tzinfo is not None


def test_python_callers_keep_passing_datetimes_and_dates() -> None:
    aware = datetime(2025, 10, 2, 4, 0, tzinfo=UTC)
    assert parse_local(aware, HELSINKI).utcoffset() == timedelta(hours=3)
    assert parse_local(aware, HELSINKI) == aware
    assert parse_local(datetime(2025, 12, 22, 7, 0), HELSINKI).utcoffset() == timedelta(hours=2)
    assert parse_local(date(2025, 12, 22), HELSINKI).hour == 7


def test_a_time_skipped_or_repeated_at_the_clock_change_is_refused() -> None:
    with pytest.raises(StateError, match="does not exist"):
        parse_local("2026-03-29 03:30", HELSINKI)  # clocks go 03:00 -> 04:00
    with pytest.raises(StateError, match="happens twice") as e:
        parse_local("26.10.2025 3.30", HELSINKI)  # clocks go 04:00 -> 03:00
    # The message shows both ways to say which one was meant.
    assert "+03:00" in str(e.value) and "+02:00" in str(e.value)
    # With the offset written out, either is fine.
    assert parse_local("2025-10-26T03:30+02:00", HELSINKI).utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize("given", ["10/24/2025 9:12 AM", "huomenna", "31.2.2025", "2025-13-01"])
def test_text_that_is_not_a_time_says_what_is_accepted(given: str) -> None:
    with pytest.raises(StateError, match="is not a date or time") as e:
        parse_local(given, HELSINKI)
    assert "2.10.2025" in str(e.value)
