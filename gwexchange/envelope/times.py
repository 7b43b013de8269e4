"""Times on the wire: whole seconds in UTC, written 2026-11-20T08:00:00Z."""

from __future__ import annotations

import re
from datetime import UTC, datetime

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_UTC_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def utcnow() -> datetime:
    """The clock every default reads (a caller passes its own to test or to skew one)."""
    return datetime.now(UTC)


def format_utc(t: datetime) -> str:
    return t.astimezone(UTC).strftime(TIME_FORMAT)


def parse_utc(text: str) -> datetime | None:
    """The time ``text`` names, or None if it is not exactly of the wire form (callers say why it matters)."""
    if not _UTC_TIME.fullmatch(text):
        return None
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)  # strptime costs ten times as much
    except ValueError:
        return None


__all__ = [
    "TIME_FORMAT",
    "format_utc",
    "parse_utc",
    "utcnow",
]
