"""Label tasks: class order, merges, and counts of what a task drops."""

from __future__ import annotations

from pathlib import Path

import pytest

from emofuse.corpora.base import Utterance
from emofuse.corpora.labels import (
    CANONICAL,
    TASKS,
    VOCABULARY,
    LabelTask,
    apply_task,
    default_task,
    get_task,
)


def utt(i: int, label: str | None, code: str = "x", corpus: str = "fake") -> Utterance:
    return Utterance(
        str(i), Path(f"{i}.wav"), label, "s1", None, None, corpus, extras={"code": code}
    )


def test_vocabulary():
    assert CANONICAL == (
        "neutral", "calm", "happy", "sad", "angry", "fearful", "disgusted", "surprised", "bored",
    )  # fmt: skip
    assert VOCABULARY == (*CANONICAL, "excited")


def test_registered_tasks():
    assert set(TASKS) >= {"iemocap4", "emodb7", "ravdess8", "emovo7", "bundled7"}
    assert TASKS["iemocap4"].labels == ("neutral", "happy", "angry", "sad")
    assert TASKS["iemocap4"].merges == {"excited": "happy"}
    assert TASKS["bundled7"].labels == (
        "neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised",
    )  # fmt: skip
    assert TASKS["bundled7"].merges["calm"] == "neutral"
    assert TASKS["ravdess8"].num_classes == 8
    assert "bored" in TASKS["emodb7"].labels and "surprised" not in TASKS["emodb7"].labels
    for name, task in TASKS.items():
        assert task.name == name
        assert [task.index(label) for label in task.labels] == list(range(task.num_classes))


@pytest.mark.parametrize(
    ("corpus", "task"),
    [
        ("iemocap", "iemocap4"),
        ("emodb", "emodb7"),
        ("ravdess", "ravdess8"),
        ("emovo", "emovo7"),
        ("ased", "ased5"),
    ],
)
def test_default_task(corpus, task):
    assert default_task(corpus).name == task


def test_unknown_names():
    with pytest.raises(ValueError, match="no default label task for corpus 'generic'"):
        default_task("generic")
    with pytest.raises(ValueError, match="unknown label task 'x'.*bundled7"):
        get_task("x")
    with pytest.raises(ValueError, match="'bored' is not one of"):
        TASKS["emovo7"].index("bored")


@pytest.mark.parametrize(
    ("labels", "merges", "message"),
    [
        (("happy", "joy"), {}, "not in"),
        (("happy", "happy"), {}, "repeated"),
        (("happy", "sad"), {"calm": "neutral"}, "merges"),
        (("happy", "sad"), {"sad": "happy"}, "merges"),
    ],
)
def test_invalid_task(labels, merges, message):
    with pytest.raises(ValueError, match=message):
        LabelTask("bad", labels, merges)


def test_apply_bundled7_merges_and_counts():
    utts = [
        utt(0, "calm"),
        utt(1, "neutral"),
        utt(2, "bored"),
        utt(3, "bored"),
        utt(4, None, "fru", "iemocap"),
        utt(5, "excited", "exc", "iemocap"),
        utt(6, "surprised"),
    ]
    selection = apply_task(utts, "bundled7")
    assert [(u.id, u.label) for u in selection.utterances] == [
        ("0", "neutral"),
        ("1", "neutral"),
        ("5", "happy"),
        ("6", "surprised"),
    ]
    assert selection.targets == [0, 0, 1, 6]
    assert selection.merged == {"calm->neutral": 1, "excited->happy": 1}
    assert selection.dropped_labels == {"bored": 2}
    assert selection.dropped_codes == {"iemocap:fru": 1}
    assert selection.utterances[0].extras == {"code": "x", "source_label": "calm"}
    assert utts[0].label == "calm" and "source_label" not in utts[0].extras  # input untouched
    assert selection.summary() == (
        "bundled7: kept 4 (neutral 2, happy 1, sad 0, angry 0, fearful 0, disgusted 0, "
        "surprised 1); merged calm->neutral 1, excited->happy 1; dropped labels bored 2; "
        "dropped unlabelled iemocap:fru 1"
    )


def test_apply_without_merge_drops_excited():
    selection = apply_task([utt(0, "excited"), utt(1, "happy")], "emovo7")
    assert [u.id for u in selection.utterances] == ["1"]
    assert selection.dropped_labels == {"excited": 1}
