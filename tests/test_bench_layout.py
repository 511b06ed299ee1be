"""The benchmark scripts stay small and use the package's own pieces (read with ``ast``, not
imported: a benchmark's imports may be heavy or missing here)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(BENCH.glob("*.py"))
MAX_MAIN_LINES = 60
MAX_FUNCTION_LINES = 80
COMMON_IMPORT = "import _common as common"


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def test_there_are_scripts():
    assert len(SCRIPTS) > 5


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_main_is_short(path: Path):
    for node in _tree(path).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "main":
            lines = node.end_lineno - node.lineno + 1
            assert lines < MAX_MAIN_LINES, f"{path.name}: main() is {lines} lines"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_every_function_is_short(path: Path):
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = node.end_lineno - node.lineno + 1
            assert lines < MAX_FUNCTION_LINES, f"{path.name}: {node.name}() is {lines} lines"


@pytest.mark.parametrize(
    "path", [p for p in SCRIPTS if not p.name.startswith("_")], ids=lambda p: p.name
)
def test_one_way_to_import_the_shared_helpers(path: Path):
    """``_common`` by one plain import (bench/__init__.py puts bench/ on ``sys.path`` for
    ``from bench import x``); no ``try``/``except ImportError`` fallback, no ``sys.path`` edits,
    no ``from bench import _common``."""
    tree = _tree(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "path":
            assert getattr(node.value, "id", None) != "sys", f"{path.name} edits sys.path"
        if isinstance(node, ast.ImportFrom) and node.module == "bench":
            raise AssertionError(f"{path.name}:{node.lineno} imports from the bench package")
        if isinstance(node, ast.ExceptHandler) and getattr(node.type, "id", "") == "ImportError":
            raise AssertionError(f"{path.name}:{node.lineno} has an import fallback")


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_shared_corpora_found_in_one_place(path: Path):
    """The shared corpora's folder is ``_common.CORPORA`` (``corpus_files`` lists a corpus)."""
    if path.name in ("_common.py", "identity.py"):  # identity.py: new, not brought in line yet
        return
    text = path.read_text()
    assert '"shared" / "corpora"' not in text, f"{path.name}: use common.CORPORA"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_no_hand_rolled_resampling(path: Path):
    """Audio is resampled with ``emofuse.signal.audio.resample`` (soxr), not ``np.interp``."""
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Attribute) and node.attr == "interp":
            owner = node.value
            assert not (isinstance(owner, ast.Name) and owner.id in ("np", "numpy")), (
                f"{path.name}:{node.lineno} calls np.interp; use emofuse.signal.audio.resample"
            )
        if isinstance(node, ast.ImportFrom) and node.module == "numpy":
            assert "interp" not in {a.name for a in node.names}, f"{path.name} imports interp"


@pytest.mark.parametrize(
    "path", [p for p in SCRIPTS if not p.name.startswith("_")], ids=lambda p: p.name
)
def test_docstring_says_how_to_run(path: Path):
    doc = ast.get_docstring(_tree(path))
    assert doc, f"{path.name} has no module docstring"
    assert f"bench/{path.name}" in doc or f"bench.{path.stem}" in doc, (
        f"{path.name}: the docstring does not say how to run it (python bench/{path.name} ...)"
    )


MAX_ROW_KEYS = 8
# Functions whose dict literal is the result file's top level (its keys are the JSON's), not a row.
DOCUMENT_BUILDERS = {"main", "run", "summarize"}
# Dicts of more keys that are not rows, by file and function.
NOT_ROWS = {
    ("vad.py", "nonspeech"),  # the synthetic signals by name
    ("vad.py", "measure"),  # the result file's top level
}


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_rows_are_records(path: Path):
    """A row of results with more than MAX_ROW_KEYS string keys is a frozen dataclass
    (``asdict`` at the JSON edge), not a dict literal; renderers (which read the JSON back) and
    the builders of a result file's top level are exempt."""
    for function in ast.walk(_tree(path)):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        name = function.name
        if "render" in name or "markdown" in name or "section" in name or "table" in name:
            continue
        if name in DOCUMENT_BUILDERS or (path.name, name) in NOT_ROWS:
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Dict):
                keys = sum(isinstance(k, ast.Constant) and isinstance(k.value, str)
                           for k in node.keys)  # fmt: skip
                assert keys <= MAX_ROW_KEYS, (
                    f"{path.name}:{node.lineno} {name}() builds a {keys}-key dict: make it a record"
                )
