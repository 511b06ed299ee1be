"""What the CLI writes on stderr, for tests: its lines without the precision note."""

from __future__ import annotations

PRECISION_NOTE = "emofuse: precision "


def error_lines(err: str) -> list[str]:
    """The lines of ``err`` but the one ``emofuse: precision ...`` note (said at most once)."""
    lines = err.strip().splitlines()
    notes = [line for line in lines if line.startswith(PRECISION_NOTE)]
    assert len(notes) <= 1, notes
    return [line for line in lines if not line.startswith(PRECISION_NOTE)]
