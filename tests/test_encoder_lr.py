"""The pooled-encoder + logistic regression systems (``whisper-lr``, ``whisper-lr-speaker``):
per-speaker standardisation, the per-fold choice of layer and C on training speakers only, and
an end-to-end comparison with a tiny random Whisper encoder."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import fake_corpora
import numpy as np
import pytest
from tiny_whisper import HEADS, N_LAYERS, WIDTH, save_tiny_whisper

from emofuse.config import CorpusSpec, ExperimentConfig, TrainConfig
from emofuse.corpora import Utterance
from emofuse.corpora.labels import LabelTask
from emofuse.experiments import encoder_lr
from emofuse.experiments.compare import run_compare
from emofuse.experiments.encoder_lr import (
    C_GRID,
    encoder_feature,
    per_speaker_standardised,
    run_lr_fold,
)
from emofuse.experiments.loading import Experiment
from emofuse.experiments.splits import make_folds, speaker_key
from emofuse.features import feature_spec
from emofuse.model import ModelConfig

pytest.importorskip("sklearn")

TASK = LabelTask("synth3", ("neutral", "happy", "sad"))


def _utterance(corpus: str, speaker: str, i: int, label: str | None = "neutral") -> Utterance:
    return Utterance(
        id=f"{corpus}-{speaker}-{i}", path=Path(f"/synthetic/{corpus}/{speaker}/{i}.wav"),
        label=label, speaker=speaker, session=None, gender="FM"[int(speaker[-1]) % 2],
        corpus=corpus,
    )  # fmt: skip


# --------------------------------------------------------------------------- per speaker


def _speaker_data():
    """Three speakers (two share the name "1" in different corpora) with their own offset and
    scale, and a fourth with a single utterance: (utterances, pooled (L=2, 2W=6) per path)."""
    rng = np.random.default_rng(0)
    utterances, pooled = [], {}
    for k, (corpus, speaker, n) in enumerate(
        [("a", "1", 5), ("b", "1", 4), ("a", "2", 6), ("a", "3", 1)]
    ):
        for i in range(n):
            u = _utterance(corpus, speaker, i, TASK.labels[i % 3])
            utterances.append(u)
            pooled[str(u.path)] = 10.0 * k + (k + 1) * rng.standard_normal((2, 6))
    return utterances, pooled


def _by_speaker(utterances, out) -> dict:
    groups: dict = {}
    for u in utterances:
        groups.setdefault(speaker_key(u), []).append(out[str(u.path)])
    return {key: np.stack(rows) for key, rows in groups.items()}


def test_each_speaker_is_standardised_by_their_own_statistics():
    utterances, pooled = _speaker_data()
    original = {p: v.copy() for p, v in pooled.items()}
    out = per_speaker_standardised(pooled, utterances)
    assert set(out) == set(pooled)
    assert all(np.array_equal(pooled[p], original[p]) for p in pooled)  # input untouched
    groups = _by_speaker(utterances, out)
    assert set(groups) == {("a", "1"), ("b", "1"), ("a", "2"), ("a", "3")}
    for key, values in groups.items():
        assert values.shape[1:] == (2, 6)
        if key == ("a", "3"):  # one utterance: no spread, zeros rather than NaN
            np.testing.assert_allclose(values, 0.0, atol=1e-9)
            continue
        np.testing.assert_allclose(values.mean(axis=0), 0.0, atol=1e-9)
        np.testing.assert_allclose(values.std(axis=0), 1.0, rtol=1e-5)
        raw = _by_speaker(utterances, pooled)[key]
        expected = (raw - raw.mean(axis=0)) / raw.std(axis=0)
        np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-6)


def test_speakers_do_not_affect_each_other_and_labels_are_unused():
    utterances, pooled = _speaker_data()
    out = per_speaker_standardised(pooled, utterances)
    # Another speaker's features changed: only that speaker's inputs move.
    changed = dict(pooled)
    b1 = [str(u.path) for u in utterances if speaker_key(u) == ("b", "1")]
    for p in b1:
        changed[p] = 100.0 * pooled[p] - 7.0 + np.arange(6)
    again = per_speaker_standardised(changed, utterances)
    for p in pooled:
        if p not in b1:
            np.testing.assert_array_equal(again[p], out[p])
        else:  # a positive affine change per feature is standardised away
            np.testing.assert_allclose(again[p], out[p], rtol=1e-4, atol=1e-5)
    # Other labels (or none), another order: the same values.
    relabelled = [replace(u, label=None if i % 2 else "sad") for i, u in enumerate(utterances)]
    same = per_speaker_standardised(pooled, relabelled)
    assert all(np.array_equal(same[p], out[p]) for p in out)
    shuffled = per_speaker_standardised(pooled, utterances[::-1])
    assert all(np.allclose(shuffled[p], out[p], rtol=1e-9, atol=1e-12) for p in out)
    # Only the listed utterances are returned (and only they are used).
    subset = [u for u in utterances if speaker_key(u) != ("a", "2")]
    partial = per_speaker_standardised(pooled, subset)
    assert set(partial) == {str(u.path) for u in subset}
    assert all(np.array_equal(partial[p], out[p]) for p in partial)


# --------------------------------------------------------------------------- one fold

LAYERS = [2, 5, 7]  # the encoder layer numbers of the pooled rows
INFORMATIVE = 1  # row index of the layer carrying the label (layer 5)


def _synthetic_experiment() -> Experiment:
    """Six speakers of 'synth' (9 utterances each, 3 per class), leave-one-speaker-out folds,
    and one speaker of another corpus on every fold's training side."""
    utterances = [
        _utterance("synth", f"s{s}", i, TASK.labels[i % 3]) for s in range(6) for i in range(9)
    ]
    extra = [_utterance("extra", "x0", i, TASK.labels[i % 3]) for i in range(9)]
    folds = make_folds(utterances, "loso-speaker", seed=0)
    return Experiment("synth", TASK, "loso-speaker", utterances, folds, {}, extra)


def _pooled(utterances, informative: int, seed: int, strength: float = 4.0) -> dict:
    """(3 layers, 8) per path: noise, plus ``strength`` x the one-hot class in row
    ``informative``."""
    rng = np.random.default_rng(seed)
    pooled = {}
    for u in utterances:
        values = rng.standard_normal((len(LAYERS), 8))
        values[informative, TASK.index(u.label)] += strength
        pooled[str(u.path)] = values
    return pooled


def test_layer_and_c_are_chosen_on_the_training_side_and_the_test_fold_is_scored():
    experiment = _synthetic_experiment()
    pooled = _pooled(experiment.all_utterances, INFORMATIVE, seed=1)
    for index in (0, 3):
        fold = experiment.folds[index]
        record = run_lr_fold(experiment, index, pooled, "whisper-lr", LAYERS)
        assert record.system == "whisper-lr" and record.fold == index
        assert record.chosen_params["layer"] == LAYERS[INFORMATIVE] == 5
        assert record.chosen_params["C"] in C_GRID
        assert 0.0 <= record.inner_cv_ua <= 1.0 and record.inner_cv_ua > 0.8
        assert record.ua > 0.8 and 0.0 <= record.wa <= 1.0
        assert record.n_test == len(fold.test) == 9
        assert record.n_train == len(fold.train) + len(experiment.extra_train)
        assert record.n_val == len(fold.val) >= 1
        assert record.test_speakers == [f"synth:{fold.test[0].speaker}"]
        assert "extra:x0" in record.train_speakers
        assert [p.id for p in record.predictions] == [u.id for u in fold.test]
        assert all(len(p.posteriors) == TASK.num_classes for p in record.predictions)
        assert record.best_epoch is None and record.val_ua is None and record.history == []


def test_one_training_speaker_falls_back_to_utterance_folds():
    """TESS-like: two speakers, so each fold trains on one (an inner speaker split is
    impossible); the choice is made on utterance folds of that speaker, and says so."""
    utterances = [
        _utterance("synth", f"s{s}", i, TASK.labels[i % 3]) for s in range(2) for i in range(30)
    ]
    folds = make_folds(utterances, "loso-speaker", seed=0)
    experiment = Experiment("synth", TASK, "loso-speaker", utterances, folds, {}, [])
    record = run_lr_fold(experiment, 0, _pooled(utterances, INFORMATIVE, seed=2), "whisper-lr",
                         LAYERS)  # fmt: skip
    assert record.chosen_params["inner_folds"] == "utterance"
    assert record.chosen_params["layer"] == 5 and record.ua > 0.8


def test_test_speakers_never_influence_the_choice(monkeypatch):
    experiment = _synthetic_experiment()
    fold = experiment.folds[2]
    pooled = _pooled(experiment.all_utterances, INFORMATIVE, seed=1)
    fits: list[np.ndarray] = []
    real_model = encoder_lr._model

    def spying_model(c):
        model = real_model(c)
        fit = model.fit

        def recording_fit(x, y):
            fits.append(np.array(x, copy=True))
            return fit(x, y)

        model.fit = recording_fit
        return model

    monkeypatch.setattr(encoder_lr, "_model", spying_model)
    record = run_lr_fold(experiment, 2, pooled, "whisper-lr-speaker", LAYERS)
    assert record.system == "whisper-lr-speaker"
    # Inner CV: every layer x C x 5 speaker groups (6 training-side speakers), then one refit.
    assert len(fits) == len(LAYERS) * len(C_GRID) * 5 + 1
    train_side = fold.train + fold.val + experiment.extra_train
    assert len(fits[-1]) == len(train_side)  # refit on train + validation + extra speakers
    seen = {row.tobytes() for x in fits for row in x}
    test_rows = {row.tobytes() for u in fold.test for row in pooled[str(u.path)]}
    assert not seen & test_rows  # no test-speaker row was ever fitted
    chosen = LAYERS.index(record.chosen_params["layer"])
    assert {pooled[str(u.path)][chosen].tobytes() for u in train_side} <= seen

    # The test speakers' features replaced by others whose signal sits in another layer, far
    # stronger: the choice and its inner score are exactly the same.
    monkeypatch.setattr(encoder_lr, "_model", real_model)
    other = dict(pooled)
    other.update(_pooled(fold.test, informative=2, seed=7, strength=50.0))
    moved = run_lr_fold(experiment, 2, other, "whisper-lr-speaker", LAYERS)
    assert moved.chosen_params == record.chosen_params
    assert moved.inner_cv_ua == record.inner_cv_ua
    assert moved.chosen_params["layer"] == LAYERS[INFORMATIVE]


# --------------------------------------------------------------------------- end to end

SYSTEMS = ["whisper-lr", "whisper-lr-speaker"]
N_FOLDS = 3  # both fake corpora have 3 speakers, leave-one-speaker-out


@pytest.fixture(scope="module")
def root_dir(tmp_path_factory):
    return fake_corpora.make_small_emodb_emovo(tmp_path_factory.mktemp("corpora"))


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory) -> Path:
    """A random 3-layer, 64-wide transformers Whisper model saved with ``save_pretrained``."""
    directory = tmp_path_factory.mktemp("tiny-whisper-hf")
    save_tiny_whisper(directory)
    return directory


def _whisper(directory: Path, layers=(3,)):
    return feature_spec("whisper", layers=list(layers), width=WIDTH, heads=HEADS,
                       n_layers=N_LAYERS, weights=str(directory))  # fmt: skip


def _base(directory: Path) -> ExperimentConfig:
    return ExperimentConfig(
        features=[feature_spec("mfcc", channels=16), feature_spec("logmel", channels=8),
                 _whisper(directory)],
        model=ModelConfig(d_model=16, n_heads=2, lstm_hidden=16),
        train=TrainConfig(epochs=1, batch_size=8, crop_seconds=0.4, eval_window_seconds=0.4,
                          warmup_epochs=1, device="cpu", time_mask_frames=5),
    )  # fmt: skip


def test_encoder_feature_candidate_layers(tiny_whisper):
    default = encoder_feature(_base(tiny_whisper).features[:2])  # no Whisper feature: Whisper base
    assert default.kind == "whisper" and default.name == "whisper"
    assert default.settings["layers"] == [1, 2, 3, 4, 5]
    assert default.settings["width"] == 512 and default.settings["n_layers"] == 6
    assert encoder_feature([]).settings == default.settings
    base_layers = encoder_feature([feature_spec("whisper", layers=[3])])
    assert base_layers.settings == default.settings  # the feature's own layers are replaced
    tiny = encoder_feature(_base(tiny_whisper).features)
    assert tiny.settings["layers"] == [1, 2]  # up to the last but one
    assert tiny.settings["weights"] == str(tiny_whisper) and tiny.settings["width"] == WIDTH
    deep = encoder_feature([feature_spec("whisper", n_layers=12, width=768, heads=12)])
    assert deep.settings["layers"] == [1, 2, 3, 4, 5]  # at most MAX_CANDIDATE_LAYER


@pytest.fixture(scope="module")
def compared(root_dir, tiny_whisper, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    cache = tmp_path_factory.mktemp("cache")
    corpora = [CorpusSpec(name, str(root_dir / name)) for name in ("emodb", "emovo")]
    table = run_compare(
        _base(tiny_whisper), corpora, SYSTEMS, [0], out, cache_dir=cache, progress=False
    )
    return out, table


def _fold(out: Path, corpus: str, system: str, i: int) -> dict:
    return json.loads((out / corpus / system / "seed0" / f"fold_{i:02d}.json").read_text())


def test_compare_runs_both_encoder_systems(compared):
    out, table = compared
    assert json.loads((out / "table.json").read_text()) == table
    assert table["complete"] and table["runs_done"] == 2 * len(SYSTEMS)
    assert [row["system"] for row in table["rows"]] == SYSTEMS
    for row in table["rows"]:
        assert row["model"] is None  # not the network
        assert set(row["corpora"]) == {"emodb", "emovo"}
        for cell in row["corpora"].values():
            assert cell["n"] == N_FOLDS and cell["params"] is None
            assert 0 <= cell["ua_mean"] <= 1 and 0 <= cell["wa_mean"] <= 1
    text = (out / "table.md").read_text()
    assert all(f"| {system} | " in text for system in SYSTEMS)
    differs = False
    for corpus in ("emodb", "emovo"):  # both tasks have 7 classes
        for i in range(N_FOLDS):
            folds = {system: _fold(out, corpus, system, i) for system in SYSTEMS}
            for system, fold in folds.items():
                assert fold["system"] == system
                assert fold["chosen_params"]["layer"] in (1, 2)
                assert fold["chosen_params"]["C"] in C_GRID
                assert 0.0 <= fold["inner_cv_ua"] <= 1.0
                assert fold["best_epoch"] is None and fold["val_ua"] is None
                assert all(len(p["posteriors"]) == 7 for p in fold["predictions"])
            one, two = folds.values()
            assert one["test_speakers"] == two["test_speakers"]
            assert [p["id"] for p in one["predictions"]] == [p["id"] for p in two["predictions"]]
            differs |= one["predictions"] != two["predictions"]
        for system in SYSTEMS:
            summary = json.loads((out / corpus / system / "seed0" / "summary.json").read_text())
            assert summary["system"] == system and summary["n_folds"] == N_FOLDS
    assert differs  # the per-speaker standardisation changes the model's posteriors
