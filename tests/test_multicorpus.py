"""Several corpora at once: extra training corpora, leave-one-corpus-out, and `emofuse train`."""

from __future__ import annotations

import dataclasses
import json

import fake_corpora
import numpy as np
import pytest

from emofuse.config import ConfigError, CorpusSpec, DataConfig, ExperimentConfig, TrainConfig
from emofuse.experiments.crossval import run_crossval
from emofuse.experiments.deployable import train_final
from emofuse.experiments.loading import (
    Features,
    load_features,
    load_manifest,
    prepare_experiment,
)
from emofuse.experiments.splits import (
    holdout_speakers,
    leave_one_corpus_out,
    make_folds,
    speaker_key,
)
from emofuse.features import feature_spec
from emofuse.model import ModelConfig
from emofuse.pipeline import load_pipeline

SPEAKERS = ("03", "08", "10")
STEMS = tuple(f"{s}a0{v}{c}{'ab'[v - 1]}" for s in SPEAKERS for c in "WAFTN" for v in (1, 2))


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    emodb = tmp_path_factory.mktemp("emodb")
    for i, stem in enumerate(STEMS):
        fake_corpora.write_audio(emodb / "wav" / f"{stem}.wav", seconds=0.5, seed=i)
    ravdess = fake_corpora.make_ravdess(tmp_path_factory.mktemp("ravdess"), actors=range(1, 7))
    emovo = fake_corpora.make_emovo(tmp_path_factory.mktemp("emovo"))
    return {"emodb": emodb, "ravdess": ravdess, "emovo": emovo}


def _config(roots, names, task="bundled7", protocol=None) -> ExperimentConfig:
    return ExperimentConfig(
        features=[feature_spec("mfcc", channels=16), feature_spec("logmel", channels=8)],
        model=ModelConfig(d_model=16, n_heads=2, lstm_hidden=16),
        train=TrainConfig(epochs=2, batch_size=8, crop_seconds=0.4, eval_window_seconds=0.4,
                          warmup_epochs=1, device="cpu", time_mask_frames=5),
        data=DataConfig([CorpusSpec(n, str(roots[n])) for n in names], task, protocol),
    )  # fmt: skip


def test_extra_corpora_train_every_fold_but_are_never_tested(roots):
    experiment = prepare_experiment(_config(roots, ["emodb", "ravdess", "emovo"]))
    assert experiment.corpus == "emodb" and len(experiment.folds) == 3
    assert {u.corpus for u in experiment.extra_train} == {"ravdess", "emovo"}
    for fold in experiment.folds:
        assert {u.corpus for u in fold.test} == {"emodb"}
        assert {u.corpus for u in fold.val} == {"emodb"}
    assert all(u.label != "bored" for u in experiment.utterances)  # bundled7 leaves it out
    assert experiment.dropped.get("bored", 0) == 0  # no 'L' stems in this fake tree


def test_loco_folds_hold_out_whole_corpora(roots):
    experiment = prepare_experiment(_config(roots, ["emodb", "ravdess", "emovo"], protocol="loco"))
    assert experiment.corpus == "emodb+ravdess+emovo" and experiment.extra_train == []
    assert [f.name for f in experiment.folds] == ["corpus-emodb", "corpus-emovo", "corpus-ravdess"]
    for fold in experiment.folds:
        test_corpora = {u.corpus for u in fold.test}
        assert len(test_corpora) == 1
        assert not test_corpora & {u.corpus for u in fold.train + fold.val}
        assert {u.corpus for u in fold.val} == {u.corpus for u in fold.train}  # each represented
        assert not {speaker_key(u) for u in fold.val} & {speaker_key(u) for u in fold.train}
    assert sorted(u.id for f in experiment.folds for u in f.test) == sorted(
        u.id for u in experiment.utterances
    )


def test_loco_needs_two_corpora(roots):
    experiment = prepare_experiment(_config(roots, ["emodb"], task="emodb7"))
    with pytest.raises(ValueError, match="at least 2 corpora"):
        leave_one_corpus_out(experiment.utterances)
    with pytest.raises(ValueError, match="at least 2 corpora"):
        make_folds(experiment.utterances, "loco")


def test_holdout_speakers_takes_speakers_from_every_corpus(roots):
    experiment = prepare_experiment(_config(roots, ["emodb", "ravdess", "emovo"], protocol="loco"))
    train, val = holdout_speakers(experiment.utterances, seed=1)
    assert {u.corpus for u in val} == {"emodb", "ravdess", "emovo"}
    assert not {speaker_key(u) for u in val} & {speaker_key(u) for u in train}
    assert len(train) + len(val) == len(experiment.utterances)
    again, _ = holdout_speakers(experiment.utterances, seed=1)
    assert [u.id for u in again] == [u.id for u in train]


def test_crossval_with_extra_corpora_writes_it_down(roots, tmp_path):
    config = _config(roots, ["emodb", "emovo"])
    summary = run_crossval(
        config, tmp_path / "cv", folds=[0], cache_dir=tmp_path / "c", progress=False
    )
    fold = json.loads((tmp_path / "cv" / "fold_00.json").read_text())
    assert any(s.startswith("emovo:") for s in fold["train_speakers"])
    assert fold["n_train"] > len(STEMS)  # EmoDB training speakers plus all of EMOVO
    assert summary["labels"] == [
        "neutral",
        "happy",
        "sad",
        "angry",
        "fearful",
        "disgusted",
        "surprised",
    ]
    assert "also trains on" in (tmp_path / "cv" / "summary.md").read_text()


def test_train_final_writes_a_loadable_model(roots, tmp_path):
    config = _config(roots, ["emodb", "ravdess", "emovo"])
    report = train_final(config, tmp_path / "final", cache_dir=tmp_path / "c", progress=False)
    assert set(report["train_utterances"]) == {"emodb", "ravdess", "emovo"}
    assert {s.split(":")[0] for s in report["val_speakers"]} == {"emodb", "ravdess", "emovo"}
    assert 0 <= report["val_ua"] <= 1 and len(report["history"]) == 2
    pipeline = load_pipeline(tmp_path / "final" / "model.pt")
    assert pipeline.labels == tuple(report["labels"])
    assert not (tmp_path / "final" / "checkpoint.pt").exists()
    assert json.loads((tmp_path / "final" / "training.json").read_text())["task"] == "bundled7"


def test_standardised_per_puts_every_group_on_the_scale_of_all():
    rng = np.random.default_rng(0)
    arrays = {f"p{i}": {"s": (rng.normal(size=(3, 40)) * (1 + 2 * (i % 2)) + 5 * (i % 2))
                        .astype(np.float32)} for i in range(6)}  # fmt: skip
    features = Features(arrays, {"s": 100.0})
    groups = {f"p{i}": i % 2 for i in range(5)}  # p5 is not listed: left out
    result = features.standardised_per(groups)
    assert set(result.arrays) == set(groups)
    everything = np.concatenate([arrays[p]["s"] for p in groups], axis=1)
    for g in (0, 1):
        frames = np.concatenate([result.arrays[p]["s"] for p in groups if groups[p] == g], axis=1)
        np.testing.assert_allclose(frames.mean(1), everything.mean(1), atol=1e-4)
        np.testing.assert_allclose(frames.std(1), everything.std(1), rtol=1e-4)


def test_train_final_per_speaker_keeps_the_prior_and_says_so(roots, tmp_path):
    config = _config(roots, ["emodb", "ravdess"])
    config.train = dataclasses.replace(config.train, normalise="speaker", epochs=1)
    train_final(config, tmp_path / "final", cache_dir=tmp_path / "c", progress=False)
    pipeline = load_pipeline(tmp_path / "final" / "model.pt")
    assert pipeline.extra["normalised_per"] == "speaker"  # the timeline adapts by default
    _, utterances, _ = load_manifest(config)
    raw = load_features(utterances, config, tmp_path / "c")
    for name, norm in pipeline.normalizers.items():  # all the frames, not one speaker's
        frames = np.concatenate([raw.arrays[str(u.path)][name] for u in utterances], axis=1)
        np.testing.assert_allclose(norm.mean.numpy(), frames.mean(1), rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(norm.std.numpy(), frames.std(1), rtol=1e-3, atol=1e-3)


def test_normalise_must_be_global_or_speaker():
    with pytest.raises(ConfigError, match="normalise must be global or speaker, got 'corpus'"):
        TrainConfig(normalise="corpus")


def test_max_utterances_caps_a_corpus_evenly(roots):
    config = _config(roots, ["emodb", "ravdess"])
    _, everything, dropped = load_manifest(config)
    config.data.corpora[1] = CorpusSpec("ravdess", str(roots["ravdess"]), max_utterances=4)
    _, capped, dropped_capped = load_manifest(config)
    ravdess = [u for u in everything if u.corpus == "ravdess"]
    assert [u for u in capped if u.corpus == "emodb"] == [
        u for u in everything if u.corpus == "emodb"
    ]
    kept = [u for u in capped if u.corpus == "ravdess"]
    assert len(kept) == 4 and len(ravdess) > 4
    assert kept == ravdess[:: len(ravdess) // 4][:4]  # spread over the corpus, not its start
    assert dropped_capped == dropped  # the task's drops are counted before the cap
