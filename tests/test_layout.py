"""The package's modules stay small enough to read: one job each, at most 450 lines."""

from __future__ import annotations

from pathlib import Path

import emofuse

MAX_LINES = 450


def test_no_module_is_over_450_lines():
    package = Path(emofuse.__file__).parent
    sizes = {str(p.relative_to(package)): len(p.read_text().splitlines())
             for p in package.rglob("*.py")}  # fmt: skip
    assert len(sizes) > 50  # the package was found
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
