"""Fold builders: speaker independence, coverage, determinism, labelled random split."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import fake_corpora as fake
import pytest
from real_audio import corpus_root

from emofuse.corpora import load_corpus
from emofuse.corpora.base import Utterance
from emofuse.experiments.splits import (
    default_protocol,
    leave_one_speaker_out,
    make_folds,
    random_split,
    speaker_key,
    speaker_kfold,
)


def synthetic(speakers: dict[str, str | None], per_speaker: int = 4, corpus: str = "fake"):
    return [
        Utterance(f"{s}-{i}", Path(f"{s}-{i}.wav"), "happy", s, None, g, corpus)
        for s, g in speakers.items()
        for i in range(per_speaker)
    ]


def check_speaker_independent(utterances, folds):
    """Disjoint speakers, non-empty parts, and every utterance tested exactly once."""
    tested = Counter()
    for fold in folds:
        assert not fold.speaker_overlap and "speaker-independent" in fold.description
        assert fold.train and fold.val and fold.test
        test = {speaker_key(u) for u in fold.test}
        assert not test & {speaker_key(u) for u in fold.train + fold.val}
        assert len(fold.train) + len(fold.val) + len(fold.test) == len(utterances)
        tested.update(u.id for u in fold.test)
    assert tested == Counter(u.id for u in utterances)
    assert len({f.name for f in folds}) == len(folds)


def disjoint_val(fold):
    return not {speaker_key(u) for u in fold.val} & {speaker_key(u) for u in fold.train}


@pytest.fixture(scope="module")
def fakes(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpora")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "iemocap": load_corpus("iemocap", fake.make_iemocap(root / "iemocap")),
            "emodb": load_corpus("emodb", fake.make_emodb(root / "emodb")),
            "ravdess": load_corpus("ravdess", fake.make_ravdess(root / "ravdess")),
            "emovo": load_corpus("emovo", fake.make_emovo(root / "emovo")),
            "tess": load_corpus("tess", fake.make_tess(root / "tess")),
            "savee": load_corpus("savee", fake.make_savee(root / "savee")),
        }


@pytest.mark.parametrize("corpus", ["iemocap", "emodb", "ravdess", "emovo", "tess", "savee"])
def test_default_protocols_on_fake_corpora(fakes, corpus):
    utts = fakes[corpus]
    folds = make_folds(utts, default_protocol(corpus), seed=3)
    check_speaker_independent(utts, folds)
    expected = {"iemocap": 5, "emodb": 4, "ravdess": 6, "emovo": 6, "tess": 2, "savee": 4}
    assert len(folds) == expected[corpus]
    if corpus != "tess":
        assert all(disjoint_val(f) for f in folds)


def test_iemocap_sessions(fakes):
    utts = fakes["iemocap"]
    folds = make_folds(utts, "loso-session")
    assert [f.name for f in folds] == [f"session-{s}" for s in range(1, 6)]
    assert {u.speaker for u in folds[0].test} == {"1F", "1M"}
    folds = make_folds(utts, "loso-speaker", n_val_speakers=2)
    check_speaker_independent(utts, folds)
    assert len(folds) == 10
    for fold in folds:
        assert sorted(u.gender for u in {speaker_key(u): u for u in fold.val}.values()) == [
            "F",
            "M",
        ]


def test_ravdess_six_folds_of_four_actors(fakes):
    folds = make_folds(fakes["ravdess"], "kfold-speaker-6", seed=0)
    assert [sorted({u.speaker for u in f.test}) for f in folds][:2] == [
        ["01", "02", "03", "04"],
        ["05", "06", "07", "08"],
    ]
    assert "test speakers 21, 22, 23, 24" in folds[-1].description
    for fold in folds:
        val = {u.speaker: u.gender for u in fold.val}
        assert len(val) == 2 and sorted(val.values()) == ["F", "M"]


def test_validation_is_deterministic_per_seed(fakes):
    utts = fakes["ravdess"]

    def vals(seed):
        return [
            sorted({u.speaker for u in f.val}) for f in make_folds(utts, "kfold-speaker-6", seed)
        ]

    assert vals(1) == vals(1)
    assert vals(1) != vals(2)


def test_tess_single_training_speaker(fakes):
    folds = make_folds(fakes["tess"], "loso-speaker")
    for fold in folds:
        assert len({u.speaker for u in fold.train + fold.val}) == 1
        assert "random utterances of the one training speaker" in fold.description


def test_mixed_corpora_keep_speakers_apart():
    utts = synthetic({"01": "M", "02": "F"}, corpus="a") + synthetic(
        {"01": "F", "02": "M"}, corpus="b"
    )
    folds = leave_one_speaker_out(utts)
    assert [f.name for f in folds] == [
        "speaker-a:01",
        "speaker-a:02",
        "speaker-b:01",
        "speaker-b:02",
    ]
    check_speaker_independent(utts, folds)


def test_speaker_kfold_sizes_and_errors():
    utts = synthetic({str(i): None for i in range(1, 8)}, per_speaker=1)
    folds = speaker_kfold(utts, 3)
    assert [sorted((u.speaker for u in f.test), key=int) for f in folds] == [
        ["1", "2", "3"],
        ["4", "5"],
        ["6", "7"],
    ]
    with pytest.raises(ValueError, match="2 <= k <= 7"):
        speaker_kfold(utts, 8)
    with pytest.raises(ValueError, match=r"fold-1-of-3: n_val_speakers must be in 1\.\.3"):
        speaker_kfold(utts, 3, n_val_speakers=5)


def test_session_errors():
    utts = synthetic({"a": None, "b": None})
    with pytest.raises(ValueError, match="has no session"):
        make_folds(utts, "loso-session")
    mixed = [
        Utterance("1", Path("1.wav"), "sad", "a", "s1", None, "x"),
        Utterance("2", Path("2.wav"), "sad", "a", "s2", None, "x"),
    ]
    with pytest.raises(ValueError, match="appears in sessions 's1' and 's2'"):
        make_folds(mixed, "loso-session")


def test_one_speaker_needs_random():
    with pytest.raises(ValueError, match="use protocol 'random'"):
        make_folds(synthetic({"unknown": None}), "loso-speaker")


def test_unknown_protocol_and_corpus():
    with pytest.raises(ValueError, match="unknown protocol 'kfold-speaker-x'"):
        make_folds(synthetic({"a": None, "b": None}), "kfold-speaker-x")
    with pytest.raises(ValueError, match="no default protocol for corpus 'x'"):
        default_protocol("x")
    assert default_protocol("cremad").startswith("kfold-speaker-")


def test_random_split_is_labelled(fakes):
    utts = fakes["emovo"]
    (fold,) = make_folds(utts, "random", seed=5)
    assert fold.speaker_overlap and "NOT speaker-independent" in fold.description
    assert "speaker-overlap" in fold.name
    assert sorted(u.id for u in fold.train + fold.val + fold.test) == sorted(u.id for u in utts)
    assert (len(fold.test), len(fold.val)) == (8, 4)
    assert [u.id for u in random_split(utts, seed=5)[0].test] == [u.id for u in fold.test]
    with pytest.raises(ValueError, match="sum < 1"):
        random_split(utts, test_fraction=0.5, val_fraction=0.5)


@pytest.mark.parametrize("corpus", ["emodb", "ravdess", "emovo", "ased"])
def test_real_corpora(corpus):
    utts = load_corpus(corpus, corpus_root(corpus))
    folds = make_folds(utts, default_protocol(corpus), seed=0)
    assert len(folds) == {"emodb": 10, "ravdess": 6, "emovo": 6, "ased": 5}[corpus]
    if corpus == "ased":  # 5 folds of 13 speakers
        assert [len({u.speaker for u in f.test}) for f in folds] == [13] * 5
    check_speaker_independent(utts, folds)
    assert all(disjoint_val(f) for f in folds)
