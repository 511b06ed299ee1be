"""Corpus manifests: one module per corpus, each with ``prepare(root) -> list[Utterance]``.

>>> print(" ".join(sorted(CORPORA)))
ased commands cremad emodb emovo generic iemocap korean ravdess savee spanish tess turkish
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from emofuse.corpora import (
    ased,
    commands,
    cremad,
    emodb,
    emovo,
    generic,
    iemocap,
    korean,
    ravdess,
    savee,
    spanish,
    tess,
    turkish,
)
from emofuse.corpora.base import CorpusError, CorpusWarning, Utterance, describe

CORPORA: dict[str, ModuleType] = {
    module.NAME: module
    for module in (
        iemocap,
        emodb,
        ravdess,
        emovo,
        ased,
        cremad,
        tess,
        savee,
        spanish,
        korean,
        turkish,
        commands,
        generic,
    )  # fmt: skip
}

__all__ = ["CORPORA", "CorpusError", "CorpusWarning", "Utterance", "describe", "load_corpus"]


def load_corpus(name: str, root: str | Path) -> list[Utterance]:
    """The manifest of corpus ``name`` (a key of ``CORPORA``) stored under ``root``."""
    if name not in CORPORA:
        raise CorpusError(f"unknown corpus {name!r}; known corpora: {', '.join(sorted(CORPORA))}")
    return CORPORA[name].prepare(root)
