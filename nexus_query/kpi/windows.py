"""Time windows for KPI facts: parsing, choosing one from the sampling, aligning, and naming them.

Windows are aligned to a fixed Monday-midnight UTC origin, so hourly windows are clock hours, daily
windows are UTC days and weekly windows start on Mondays, whatever the data's first timestamp is.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np

from nexus_query.errors import InvalidRequest

UTC = UTC
ORIGIN = datetime(1970, 1, 5, tzinfo=UTC)  # a Monday
US = 1_000_000  # microseconds per second: series timestamps are int64 microseconds since the epoch
ORIGIN_US = int(ORIGIN.timestamp()) * US
MINUTE, HOUR, DAY, WEEK = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1), timedelta(days=7)
MONTH = timedelta(days=30)  # the false-alarm budget's period
# Windows the data can choose from when the catalogue names none, smallest first. An hour at least: the
# seed's unit ("in the last hour"), and finer windows of a KPI are mostly noise (a catalogue may still name
# 15m). Six hours lets hourly and sparse series be judged four times a day (a day-long window would average a
# few hours' excursion away).
LADDER = (HOUR, 6 * HOUR, DAY, WEEK, 4 * WEEK)
# auto: the data decides (see baselines.py); none: the recent level only; daily/weekly: that season only.
SEASONS = {"auto": None, "none": None, "daily": DAY, "weekly": WEEK}

_WINDOW = re.compile(r"\s*(\d+)\s*(m|min|h|d|w)\s*", re.IGNORECASE)
_UNITS = {"m": MINUTE, "min": MINUTE, "h": HOUR, "d": DAY, "w": WEEK}


def parse_window(text: str | timedelta) -> timedelta:
    """``"15m"``, ``"1h"``, ``"1d"``, ``"1w"`` → a timedelta of whole minutes."""
    if isinstance(text, timedelta):
        window = text
    else:
        match = _WINDOW.fullmatch(str(text))
        if not match:
            raise InvalidRequest(f"window must look like 15m, 1h, 1d or 1w, got {text!r}", field="window")
        window = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if window <= timedelta(0) or window % MINUTE:
        raise InvalidRequest(f"window must be a positive whole number of minutes, got {text!r}", field="window")
    return window


def window_code(window: timedelta) -> str:
    """The short form ``parse_window`` reads back: 1w, 1d, 1h, 15m."""
    for unit, size in (("w", WEEK), ("d", DAY), ("h", HOUR)):
        if window % size == timedelta(0):
            return f"{window // size}{unit}"
    return f"{window // MINUTE}m"


def typical_spacing_us(timestamps_us: np.ndarray) -> int | None:
    """The mean gap between readings (span over gaps), or None with fewer than two distinct times. The mean,
    not the median: bursty sampling (every 5 minutes, then silence for an hour) promises what it delivers
    on average, and windows sized by the median would mostly look incomplete."""
    stamps = np.unique(timestamps_us)
    if stamps.size < 2:
        return None
    return max(1, int((int(stamps[-1]) - int(stamps[0])) // (stamps.size - 1)))


def choose_window(timestamps_us: np.ndarray, min_points: int) -> timedelta:
    """The smallest ladder window that holds ``min_points`` readings at the data's usual sampling."""
    spacing = typical_spacing_us(timestamps_us)
    if spacing is None:
        return HOUR
    for window in LADDER:
        if round(to_us(window) / spacing) >= min_points:
            return window
    return LADDER[-1]


def to_us(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def window_of(us: int, window: timedelta) -> int:
    return (int(us) - ORIGIN_US) // to_us(window)


def window_start_us(index: int, window: timedelta) -> int:
    return ORIGIN_US + index * to_us(window)


def to_datetime(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(us))


def from_datetime(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return to_us(moment - datetime(1970, 1, 1, tzinfo=UTC))


def stamp(us: int) -> str:
    """A moment in sentences: '2026-11-16 14:00 UTC'."""
    return f"{to_datetime(us):%Y-%m-%d %H:%M} UTC"


def iso(us: int) -> str:
    """ISO 8601 in UTC with a ``Z``; whole seconds unless the instant has a fraction."""
    moment = to_datetime(us)
    text = moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def season_lag(window: timedelta, seasonality: str) -> int:
    """How many windows back the comparable window lies: 1, or one season (a day, a week) back."""
    period = SEASONS[seasonality]
    if period is None or window >= period or period % window:
        return 1
    return period // window


# ---- words -------------------------------------------------------------------------------------

def window_noun(window: timedelta) -> str:
    """'hour', '15 minutes', 'day', 'week', '28 days'."""
    names = {MINUTE: "minute", HOUR: "hour", DAY: "day", WEEK: "week"}
    if window in names:
        return names[window]
    for unit, size in (("days", DAY), ("hours", HOUR)):
        if window % size == timedelta(0):
            return f"{window // size} {unit}"
    return f"{window // MINUTE} minutes"


def windows_noun(window: timedelta, count: int) -> str:
    """'6 hours', '24 15-minute windows', '8 weeks'."""
    names = {MINUTE: "minutes", HOUR: "hours", DAY: "days", WEEK: "weeks"}
    if window in names:
        return f"{count} {names[window]}"
    return f"{count} {window_noun(window).replace(' ', '-').removesuffix('s')} windows"


def duration_phrase(delta: timedelta) -> str:
    """How long something lasted: '1 hour', '6 hours', '2 days', '45 minutes', '1 day 6 hours'."""
    if delta % DAY == timedelta(0):
        days = delta // DAY
        return f"{days} day{'s' if days != 1 else ''}"
    if delta > DAY and delta % HOUR == timedelta(0):
        days, hours = delta // DAY, (delta % DAY) // HOUR
        return f"{days} day{'s' if days != 1 else ''} {hours} hour{'s' if hours != 1 else ''}"
    if delta % HOUR == timedelta(0):
        hours = delta // HOUR
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = delta // MINUTE
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def period_phrase(start_us: int, end_us: int, window: timedelta) -> str:
    """Names one window exactly: 'in the hour ending 2025-06-03 14:00 UTC', 'on 2025-06-03 (UTC)'."""
    start, end = to_datetime(start_us), to_datetime(end_us)
    if window == DAY:
        return f"on {start:%Y-%m-%d} (UTC)"
    if window % DAY == timedelta(0):
        last_day = end - DAY
        return f"in the {window_noun(window)} {start:%Y-%m-%d} to {last_day:%Y-%m-%d} (UTC)"
    return f"in the {window_noun(window)} ending {end:%Y-%m-%d %H:%M} UTC"


def comparison_phrase(window: timedelta, lag: int) -> str:
    """What the current window is compared with: 'the hour before', 'the same hour a day earlier'."""
    if lag == 1:
        return f"the {window_noun(window)} before"
    season = "a day" if window * lag == DAY else "a week"
    return f"the same {window_noun(window)} {season} earlier"


def history_phrase(window: timedelta, lag: int, count: int, *, any_of: bool = False) -> str:
    """The earlier windows a baseline or an extreme covers: 'the previous 24 hours', 'any of the previous
    168 hours', 'the same hour on the previous 13 days'."""
    some = "any of " if any_of else ""
    if lag == 1:
        return f"{some}the previous {windows_noun(window, count)}"
    season = "days" if window * lag == DAY else "weeks"
    return f"the same {window_noun(window)} on {some}the previous {count} {season}"
