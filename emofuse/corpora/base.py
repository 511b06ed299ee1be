"""The manifest record shared by every corpus, its errors, and helpers for corpus modules.

A manifest is a plain ``list[Utterance]``. Building one reads directory listings and label
files only; no audio is decoded, so ``Utterance.duration`` stays ``None`` unless a caller fills it.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AUDIO_SUFFIXES = (".wav", ".flac")


class CorpusError(ValueError):
    """A corpus folder or label file is missing or not in the expected format."""


class CorpusWarning(UserWarning):
    """Something in a corpus was skipped (an unparsable file name, a label without audio)."""


@dataclass(frozen=True)
class Utterance:
    """One labelled recording.

    ``label`` is a word of ``emofuse.corpora.labels.VOCABULARY`` or ``None`` when the corpus code
    has no such label (IEMOCAP ``fru``/``oth``/``xxx``, an unknown code); the raw code is always
    kept in ``extras["code"]`` (for the CSV/folder corpus, the label as written).
    ``speaker`` is unique within ``corpus`` only; combine both when mixing corpora.
    """

    id: str
    path: Path
    label: str | None
    speaker: str
    session: str | None
    gender: str | None
    corpus: str
    duration: float | None = None
    extras: dict[str, Any] = field(default_factory=dict, hash=False)


def require_dir(root: str | Path, corpus: str, expected: str) -> Path:
    """Return ``root`` as a ``Path``, or raise ``CorpusError`` saying which layout was expected."""
    path = Path(root).expanduser()
    if not path.is_dir():
        raise CorpusError(f"{corpus}: corpus folder {path} does not exist; expected {expected}")
    return path


def is_audio(path: Path) -> bool:
    """True for a ``.wav``/``.flac`` file name (any case) that is not hidden (``._x.wav``)."""
    return path.suffix.lower() in AUDIO_SUFFIXES and not path.name.startswith(".")


def find_audio(directory: Path, pattern: str = "**/*") -> list[Path]:
    """Audio files matching ``pattern`` under ``directory``, sorted by path."""
    return sorted(p for p in directory.glob(pattern) if is_audio(p) and p.is_file())


def index_by_stem(paths: Iterable[Path], corpus: str) -> dict[str, Path]:
    """Map file stem to path; two files with one stem (``x.wav`` and ``x.flac``) is an error."""
    index: dict[str, Path] = {}
    for path in paths:
        if path.stem in index:
            raise CorpusError(
                f"{corpus}: two audio files for {path.stem!r}: {index[path.stem]}, {path}"
            )
        index[path.stem] = path
    return index


def collect(
    paths: Iterable[Path],
    parse: Callable[[Path], Utterance | None],
    *,
    corpus: str,
    root: Path,
    expected: str,
) -> list[Utterance]:
    """Parse each path into an utterance (``None``: name not of this corpus).

    Raises ``CorpusError`` when nothing parses or two files give one id (``x.wav`` and ``x.flac``);
    warns about skipped files.
    """
    utterances: list[Utterance] = []
    skipped: list[Path] = []
    for path in paths:
        utt = parse(path)
        if utt is None:
            skipped.append(path)
        else:
            utterances.append(utt)
    if not utterances:
        raise CorpusError(
            f"{corpus}: no audio files in the {corpus} layout under {root}; expected {expected}"
        )
    if skipped:
        warnings.warn(
            f"{corpus}: skipped {len(skipped)} audio file(s) whose name does not follow "
            f"{expected}, e.g. {skipped[0]}",
            CorpusWarning,
            stacklevel=3,
        )
    check_unique_ids(utterances, corpus)
    return utterances


def check_unique_ids(utterances: Iterable[Utterance], corpus: str) -> None:
    """Raise ``CorpusError`` when two utterances share an id (e.g. ``x.wav`` and ``x.flac``)."""
    seen: dict[str, Path] = {}
    for utt in utterances:
        if utt.id in seen:
            raise CorpusError(
                f"{corpus}: two audio files for id {utt.id!r}: {seen[utt.id]}, {utt.path}"
            )
        seen[utt.id] = utt.path


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key that orders digit runs numerically (``"2" < "10"``, ``"Actor_2" < "Actor_10"``)."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def label_key(utt: Utterance) -> str:
    """The label, or ``<none:CODE>`` for an utterance without one."""
    return utt.label if utt.label is not None else f"<none:{utt.extras.get('code', '?')}>"


def describe(utterances: Iterable[Utterance]) -> str:
    """Counts per corpus, label (unlabelled ones by raw code), speaker and session, as text.

    >>> u = Utterance("a", Path("a.wav"), "sad", "03", None, "M", "emodb")
    >>> print(describe([u, u]))
    2 utterances
    corpus: emodb 2
    label: sad 2
    speaker: 03 2
    session: - 2
    """
    utts = list(utterances)

    def line(name: str, values: Iterable[str]) -> str:
        counts = Counter(values)
        items = sorted(counts.items(), key=lambda kv: natural_key(kv[0]))
        return f"{name}: " + ", ".join(f"{k} {v}" for k, v in items)

    return "\n".join(
        [
            f"{len(utts)} utterances",
            line("corpus", (u.corpus for u in utts)),
            line("label", (label_key(u) for u in utts)),
            line("speaker", (u.speaker for u in utts)),
            line("session", (u.session or "-" for u in utts)),
        ]
    )
