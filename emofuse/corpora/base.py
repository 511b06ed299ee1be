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
from typing import TYPE_CHECKING, Any

import soundfile

if TYPE_CHECKING:
    from emofuse.corpora.labels import TaskSelection

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


def readable(paths: Iterable[Path], corpus: str) -> list[Path]:
    """The paths whose audio header can be read; warns naming the others (malformed files).

    Only the header is read, no audio is decoded.
    """
    good, bad = [], []
    for path in paths:
        try:
            soundfile.info(path)
        except (RuntimeError, soundfile.LibsndfileError):
            bad.append(path)
        else:
            good.append(path)
    if bad:
        warnings.warn(
            f"{corpus}: skipped {len(bad)} audio file(s) whose header cannot be read: "
            + ", ".join(str(p) for p in bad),
            CorpusWarning,
            stacklevel=3,
        )
    return good


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


def describe(utterances: Iterable[Utterance], selection: TaskSelection | None = None) -> str:
    """Counts per corpus, label as in the corpus (unlabelled ones by raw code), speaker and
    session (where the corpus has sessions), as text; with ``selection`` (what a label task
    keeps: :func:`emofuse.corpora.labels.apply_task`), then the kept utterances' counts per
    class (merges applied, in class order), speaker and session, and what the task left out.

    >>> from emofuse.corpora.labels import apply_task
    >>> u = Utterance("a", Path("a.wav"), "sad", "03", None, "M", "emodb")
    >>> b = Utterance("b", Path("b.wav"), "calm", "08", None, "F", "emodb")
    >>> print(describe([u, u, b], apply_task([u, u, b], "emodb7")))
    3 utterances
    corpus: emodb 3
    label (as in the corpus): calm 1, sad 2
    speaker: 03 2, 08 1
    <BLANKLINE>
    task emodb7: 2 utterances kept
    class: neutral 0, happy 0, sad 2, angry 0, fearful 0, disgusted 0, bored 0
    speaker: 03 2
      left out calm: 1
    """
    utts = list(utterances)

    def line(name: str, values: Iterable[str], order: Iterable[str] = ()) -> str:
        counts = Counter(values)
        order = list(order) or sorted(counts, key=natural_key)
        return f"{name}: " + ", ".join(f"{k} {counts[k]}" for k in order)

    def people(utts: list[Utterance]) -> list[str]:
        lines = [line("speaker", (u.speaker for u in utts))]
        if any(u.session is not None for u in utts):
            lines.append(line("session", (u.session or "-" for u in utts)))
        return lines

    lines = [
        f"{len(utts)} utterances",
        line("corpus", (u.corpus for u in utts)),
        line("label (as in the corpus)", (label_key(u) for u in utts)),
        *people(utts),
    ]
    if selection is not None:
        kept = selection.utterances
        lines += [
            "",
            f"task {selection.task.name}: {len(kept)} utterances kept",
            line("class", (u.label for u in kept), selection.task.labels),
        ]
        if selection.merged:
            merged = ", ".join(f"{k} {v}" for k, v in selection.merged.items())
            lines.append(f"merged: {merged}")
        lines += people(kept)
        left_out = {**selection.dropped_labels, **selection.dropped_codes}
        lines += [f"  left out {name}: {count}" for name, count in left_out.items()]
    return "\n".join(lines)
