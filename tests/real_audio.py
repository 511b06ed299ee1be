"""Where the tests find real recordings: the shared corpora, else the bundled example clips.

``EMOFUSE_TEST_CORPORA`` moves the corpora's location (``.ci/run`` points it at an empty
folder to run the tests as a fresh machine would); by default it is ``../shared/corpora``
beside the clone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPORA = Path(os.environ.get("EMOFUSE_TEST_CORPORA", REPO.parent / "shared" / "corpora"))
EXAMPLES = sorted((REPO / "examples").glob("*.flac"))
CORPUS_GLOBS = {"emodb": "wav/*.flac", "ravdess": "**/*.flac", "emovo": "**/*.flac",
                "ased": "**/*.flac"}  # fmt: skip


EXTRA_CORPORA = Path(os.environ.get("EMOFUSE_TEST_EXTRA_CORPORA", REPO.parent / "corpora-extra"))


def extra_corpus_root(corpus: str) -> Path:
    """A corpus cloned from its public repository into ``../corpora-extra/<corpus>``
    (``EMOFUSE_TEST_EXTRA_CORPORA`` moves it); skips the test, saying where it looked."""
    folder = EXTRA_CORPORA / corpus
    if not folder.is_dir():
        pytest.skip(f"corpus {corpus} not cloned at {folder} (see docs/corpora.md)")
    return folder


def corpus_root(corpus: str) -> Path:
    """The shared corpus's folder; skips the test, saying where it looked, when it is absent."""
    folder = CORPORA / corpus
    if not folder.is_dir():
        pytest.skip(f"real corpus {corpus} not found at {folder} (no shared corpora here)")
    return folder


def corpus_files(corpus: str, count: int) -> list[Path]:
    """``count`` files spread over the sorted files of ``corpus``; skips if it is absent."""
    files = sorted(corpus_root(corpus).glob(CORPUS_GLOBS[corpus]))
    if not files:
        pytest.skip(f"no {corpus} audio under {CORPORA / corpus}")
    step = max(1, len(files) // count)
    return files[::step][:count]


def speech_files(corpus: str, count: int) -> list[Path]:
    """Real speech: files of ``corpus`` when the shared corpora are here, else the bundled
    example clips (EmoDB), repeated to ``count``."""
    if (CORPORA / corpus).is_dir():
        return corpus_files(corpus, count)
    assert EXAMPLES, f"no example clips in {REPO / 'examples'}: the tests' fallback speech"
    return [EXAMPLES[i % len(EXAMPLES)] for i in range(count)]
