"""Label vocabulary and classification tasks (label subsets with merges).

Corpus loaders map their codes onto ``VOCABULARY``: the nine ``CANONICAL`` emotions, plus
``EXTENDED`` labels that one corpus distinguishes but tasks normally merge. The only one is
IEMOCAP's ``exc`` -> ``"excited"``: the loader keeps it apart and the ``iemocap4`` task merges it
into ``"happy"`` (the usual 4-class protocol), so the merge is visible and can be switched off.

A ``LabelTask`` fixes the class order (class index = position in ``labels``). ``apply_task``
keeps the utterances whose (merged) label is in the task and counts everything it drops.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emofuse.corpora.base import Utterance

CANONICAL = (
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgusted",
    "surprised",
    "bored",
)
EXTENDED = ("excited",)
VOCABULARY = CANONICAL + EXTENDED


@dataclass(frozen=True, eq=False)
class LabelTask:
    """A classification task: ``labels`` in class-index order, ``merges`` source -> task label."""

    name: str
    labels: tuple[str, ...]
    merges: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [x for x in (*self.labels, *self.merges) if x not in VOCABULARY]
        if unknown:
            raise ValueError(f"task {self.name!r}: labels {unknown} not in {VOCABULARY}")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"task {self.name!r}: repeated labels in {self.labels}")
        bad = {s: t for s, t in self.merges.items() if t not in self.labels or s in self.labels}
        if bad:
            raise ValueError(
                f"task {self.name!r}: merges {bad} must map non-task labels onto task labels"
            )

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def map(self, label: str | None) -> str | None:
        """The task label for a vocabulary label, or ``None`` when the task drops it."""
        if label is None:
            return None
        merged = self.merges.get(label, label)
        return merged if merged in self.labels else None

    def index(self, label: str) -> int:
        """Class index of a task label."""
        try:
            return self.labels.index(label)
        except ValueError:
            raise ValueError(f"task {self.name!r}: {label!r} is not one of {self.labels}") from None


_SEVEN = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")

TASKS: dict[str, LabelTask] = {
    task.name: task
    for task in (
        LabelTask("iemocap4", ("neutral", "happy", "angry", "sad"), {"excited": "happy"}),
        LabelTask("emodb7", ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "bored")),
        LabelTask("ravdess8", ("neutral", "calm", *_SEVEN[1:])),
        LabelTask("emovo7", _SEVEN),
        LabelTask("ased5", _SEVEN[:5]),
        LabelTask("cremad6", _SEVEN[:-1]),
        LabelTask("tess7", _SEVEN),
        LabelTask("savee7", _SEVEN),
        LabelTask("spanish7", _SEVEN),
        LabelTask("korean4", _SEVEN[:4]),
        LabelTask("turkish4", _SEVEN[:4], {"calm": "neutral"}),
        LabelTask("commands4", ("neutral", "happy", "angry", "fearful"), {"calm": "neutral"}),
        LabelTask("bundled7", _SEVEN, {"calm": "neutral", "excited": "happy"}),
    )
}

_DEFAULT_TASKS = {
    "iemocap": "iemocap4",
    "emodb": "emodb7",
    "ravdess": "ravdess8",
    "emovo": "emovo7",
    "ased": "ased5",
    "cremad": "cremad6",
    "tess": "tess7",
    "savee": "savee7",
    "spanish": "spanish7",
    "korean": "korean4",
    "turkish": "turkish4",
    "commands": "commands4",
}


def get_task(name: str) -> LabelTask:
    """The registered task called ``name``."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown label task {name!r}; known: {sorted(TASKS)}") from None


def default_task(corpus_name: str) -> LabelTask:
    """The usual task for a corpus (``iemocap`` -> ``iemocap4``, ``emodb`` -> ``emodb7``, ...)."""
    try:
        return TASKS[_DEFAULT_TASKS[corpus_name]]
    except KeyError:
        raise ValueError(
            f"no default label task for corpus {corpus_name!r}; known corpora: "
            f"{sorted(_DEFAULT_TASKS)}; choose one of the tasks {sorted(TASKS)}"
        ) from None


@dataclass(frozen=True)
class TaskSelection:
    """The utterances a task keeps (labels merged) and counts of what it merged and dropped.

    ``dropped_labels``: label -> count of labelled utterances outside the task.
    ``dropped_codes``: ``"corpus:code"`` -> count of utterances without a label.
    ``merged``: ``"source->target"`` -> count; merged utterances keep ``extras["source_label"]``.
    """

    task: LabelTask
    utterances: list[Utterance]
    dropped_labels: dict[str, int]
    dropped_codes: dict[str, int]
    merged: dict[str, int]

    @property
    def targets(self) -> list[int]:
        """Class index of each kept utterance."""
        return [self.task.index(u.label) for u in self.utterances]

    def summary(self) -> str:
        """One line: kept count per class, merges and drops."""

        def fmt(counts: dict[str, int]) -> str:
            return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"

        kept = Counter(u.label for u in self.utterances)
        per_class = {label: kept[label] for label in self.task.labels}
        return (
            f"{self.task.name}: kept {len(self.utterances)} ({fmt(per_class)}); "
            f"merged {fmt(self.merged)}; dropped labels {fmt(self.dropped_labels)}; "
            f"dropped unlabelled {fmt(self.dropped_codes)}"
        )


def apply_task(utterances: list[Utterance], task: LabelTask | str) -> TaskSelection:
    """Keep the utterances whose label the task uses, with merged labels; count the rest."""
    task = get_task(task) if isinstance(task, str) else task
    kept: list[Utterance] = []
    dropped_labels: Counter[str] = Counter()
    dropped_codes: Counter[str] = Counter()
    merged: Counter[str] = Counter()
    for utt in utterances:
        target = task.map(utt.label)
        if target is None:
            if utt.label is None:
                dropped_codes[f"{utt.corpus}:{utt.extras.get('code', '?')}"] += 1
            else:
                dropped_labels[utt.label] += 1
        elif target != utt.label:
            merged[f"{utt.label}->{target}"] += 1
            kept.append(
                replace(utt, label=target, extras={**utt.extras, "source_label": utt.label})
            )
        else:
            kept.append(utt)
    return TaskSelection(
        task=task,
        utterances=kept,
        dropped_labels=dict(sorted(dropped_labels.items())),
        dropped_codes=dict(sorted(dropped_codes.items())),
        merged=dict(sorted(merged.items())),
    )
