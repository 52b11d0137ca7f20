"""Times on the wire (api.md 1.7): RFC 3339, UTC, milliseconds, ``Z``. Rendered in one place."""

from datetime import UTC, datetime

__all__ = ["format_time"]


def format_time(moment: datetime) -> str:
    """``2026-01-12T10:00:00.000Z``: the moment in UTC with milliseconds."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
