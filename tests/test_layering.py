"""The package is layered: a module imports only its own layer and the layers below it.

Every ``import`` counts, also those inside functions (the lazy ones). The layers, bottom up, are
those of ``docs/design.md`` §2; a new top-level module or package must be placed here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import emofuse

LAYERS = [
    {"emofuse", "progress", "files", "device", "metrics", "plots", "deprecation"},  # leaves
    {"signal"},  # audio, DSP, frozen front ends, voice activity: nothing of emofuse
    {"corpora"},
    {"model"},  # torch, and signal.functional's tensor helpers
    {"features", "migrate", "config"},  # which front end feeds which branch; experiment config
    {"pipeline", "testing"},
    {"training"},
    {"experiments", "feature_files"},
    {"inference"},
    {"serve"},
    {"cli", "__main__"},
]
RANK = {name: rank for rank, layer in enumerate(LAYERS) for name in layer}
# Serving never trains: inference and serve import no training or experiment code.
NEVER = {"inference": {"training", "experiments"}, "serve": {"training", "experiments"}}
PACKAGE = Path(emofuse.__file__).parent


def _layer_of(module: str) -> str:
    """``emofuse.signal.audio`` -> ``signal``; ``emofuse`` -> ``emofuse``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "emofuse"


def _imports(path: Path) -> set[str]:
    """Every ``emofuse...`` module ``path`` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "emofuse" or name.startswith("emofuse.")}


def _modules() -> dict[str, Path]:
    """``layer/module`` name -> path, for every module of the package."""
    return {str(p.relative_to(PACKAGE)): p for p in PACKAGE.rglob("*.py")}


def test_every_module_belongs_to_a_layer():
    layers = {Path(name).parts[0].removesuffix(".py") for name in _modules()}
    layers.discard("__init__")
    assert layers - set(RANK) == set(), "place the new module in LAYERS"


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for name, path in _modules().items():
        own = Path(name).parts[0].removesuffix(".py")
        own = "emofuse" if own == "__init__" else own
        for module in _imports(path):
            target = _layer_of(module)
            if RANK[target] > RANK[own] or target in NEVER.get(own, set()):
                upward.append(f"{name} imports {module}")
    assert upward == []


def test_signal_imports_nothing_of_emofuse_and_model_only_signal_functional():
    for name, path in _modules().items():
        layer = Path(name).parts[0]
        imported = {m for m in _imports(path) if _layer_of(m) != layer}
        if layer == "signal":
            assert imported == set(), f"{name}: {imported}"
        if layer == "model":
            assert imported <= {"emofuse.signal.functional"}, f"{name}: {imported}"
