"""End-to-end cross-validation on a fake EmoDB tree: every output file, resuming, protocols."""

from __future__ import annotations

import json
from dataclasses import replace

import fake_corpora
import numpy as np
import pytest

import emofuse.pipeline.cache
from emofuse.config import (
    CorpusSpec,
    DataConfig,
    ExperimentConfig,
    TrainConfig,
    load_config,
)
from emofuse.corpora.labels import get_task
from emofuse.experiments.crossval import run_crossval
from emofuse.experiments.systems import NetworkSystem
from emofuse.features import feature_spec, make_kind
from emofuse.model import ModelConfig

PNG = b"\x89PNG\r\n\x1a\n"
SPEAKERS = ("03", "08", "10")
LETTERS = "WLEAFTN"  # all seven emodb7 classes
STEMS = tuple(f"{s}a0{v}{c}{'ab'[v - 1]}" for s in SPEAKERS for c in LETTERS for v in (1, 2))
N_UTTS = len(STEMS)  # 42: 14 per speaker, 2 per class


@pytest.fixture(scope="module")
def emodb_root(tmp_path_factory):
    return fake_corpora.make_emodb(tmp_path_factory.mktemp("emodb"), stems=STEMS, seconds=0.5)


def _config(root, **train) -> ExperimentConfig:
    settings = dict(epochs=2, batch_size=8, crop_seconds=0.4, eval_window_seconds=0.4,
                    warmup_epochs=1, device="cpu", seed=3, time_mask_frames=5)  # fmt: skip
    settings.update(train)
    return ExperimentConfig(
        features=[feature_spec("mfcc", channels=16), feature_spec("logmel", channels=8)],
        model=ModelConfig(d_model=16, n_heads=2, lstm_hidden=16),
        train=TrainConfig(**settings),
        data=DataConfig(corpora=[CorpusSpec("emodb", str(root))]),
    )


@pytest.fixture(scope="module")
def full_run(emodb_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("cv")
    cache = tmp_path_factory.mktemp("cache")
    config = _config(emodb_root)
    summary = run_crossval(config, out, cache_dir=cache, progress=False)
    return config, out, summary, cache


def _fold(out, i) -> dict:
    return json.loads((out / f"fold_{i:02d}.json").read_text())


def test_config_yaml_loads_back_equal(full_run):
    config, out, _, _ = full_run
    loaded = load_config(out / "config.yaml")
    assert loaded == config
    assert loaded.train.seed == 3


def test_fold_files(full_run):
    _, out, _, _ = full_run
    labels = get_task("emodb7").labels
    test_speakers = []
    for i in range(3):
        record = _fold(out, i)
        assert record["fold"] == i
        train, val, test = (set(record[f"{k}_speakers"]) for k in ("train", "val", "test"))
        assert train and val and test
        assert not test & train and not test & val and not train & val
        assert record["speaker_overlap"] is False
        test_speakers += record["test_speakers"]
        assert record["n_train"] + record["n_val"] + record["n_test"] == N_UTTS
        assert record["n_test"] == 14
        for key in ("wa", "ua", "macro_f1", "val_ua"):
            assert 0 <= record[key] <= 1, key
        confusion = np.array(record["confusion"])
        assert confusion.shape == (7, 7)
        assert confusion.sum() == record["n_test"]
        assert (confusion.sum(axis=1) == 2).all()  # two test clips of every class
        assert np.trace(confusion) / record["n_test"] == pytest.approx(record["wa"])
        assert len(record["predictions"]) == record["n_test"]
        for p in record["predictions"]:
            assert p["id"].startswith(record["test_speakers"][0].split(":")[1])
            assert 0 <= p["label"] < len(labels)
            assert len(p["posteriors"]) == len(labels)
            assert sum(p["posteriors"]) == pytest.approx(1, abs=1e-3)
        assert [h["epoch"] for h in record["history"]] == [0, 1]
        assert record["best_epoch"] in (0, 1)
        # The fold's checkpoint is gone once it is done; its best model stays.
        assert (out / f"fold_{i:02d}" / "model.pt").is_file()
        assert not (out / f"fold_{i:02d}" / "checkpoint.pt").exists()
    assert sorted(test_speakers) == [f"emodb:{s}" for s in SPEAKERS]
    assert not list(out.rglob("*.tmp"))


def test_summary_json(full_run):
    _, out, summary, _ = full_run
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    records = [_fold(out, i) for i in range(3)]
    assert summary["corpus"] == "emodb" and summary["protocol"] == "loso-speaker"
    assert summary["labels"] == list(get_task("emodb7").labels)
    assert summary["n_folds"] == 3 and summary["seed"] == 3
    assert [f["fold"] for f in summary["folds"]] == [0, 1, 2]
    for key in ("wa", "ua", "macro_f1"):
        values = [r[key] for r in records]
        assert [f[key] for f in summary["folds"]] == values
        assert summary["mean"][key] == pytest.approx(np.mean(values))
        assert summary["std"][key] == pytest.approx(np.std(values))
        assert 0 <= summary["pooled"][key] <= 1
    assert summary["pooled"]["n"] == N_UTTS
    assert summary["confusion"] == np.sum([r["confusion"] for r in records], axis=0).tolist()
    assert summary["speaker_overlap"] is False


def test_summary_md_and_figures(full_run):
    _, out, _, _ = full_run
    text = (out / "summary.md").read_text()
    assert "speaker-independent" in text
    assert "SPEAKER-OVERLAPPING" not in text
    assert "3 of 3 folds" in text and "seed 3" in text
    assert text.count("\n| ") >= 3 + 2  # header, one row per fold, mean and pooled
    for name in ("confusion.png", "learning_curves.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG and len(data) > 1000, name


def test_fold_subset_and_no_recomputation(emodb_root, full_run, tmp_path, monkeypatch):
    _, _, _, cache = full_run  # features already cached
    config = _config(emodb_root, epochs=1)
    ran = []
    original = NetworkSystem.run_fold
    monkeypatch.setattr(
        NetworkSystem,
        "run_fold",
        lambda self, experiment, index, *a, **k: (
            ran.append(index) or original(self, experiment, index, *a, **k)
        ),
    )

    def no_decoding(*args, **kwargs):
        raise AssertionError("cached features were decoded again")

    monkeypatch.setattr(emofuse.pipeline.cache, "load_audio", no_decoding)
    summary = run_crossval(config, tmp_path, folds=[1], cache_dir=cache, progress=False)
    assert ran == [1]
    assert sorted(p.name for p in tmp_path.glob("fold_*.json")) == ["fold_01.json"]
    assert [f["fold"] for f in summary["folds"]] == [1]
    assert "1 of 3 folds" in (tmp_path / "summary.md").read_text()
    first = (tmp_path / "fold_01.json").stat().st_mtime_ns

    summary = run_crossval(config, tmp_path, folds=[2, 1], cache_dir=cache, progress=False)
    assert ran == [1, 2]  # fold 1 was finished
    assert (tmp_path / "fold_01.json").stat().st_mtime_ns == first
    assert [f["fold"] for f in summary["folds"]] == [1, 2]

    with pytest.raises(ValueError, match="another config.*train.epochs"):
        run_crossval(_config(emodb_root, epochs=2), tmp_path, folds=[0], cache_dir=cache,
                     progress=False)  # fmt: skip
    assert ran == [1, 2]


@pytest.mark.parametrize("folds", [[3], [-1], [0, 7]])
def test_out_of_range_fold(emodb_root, tmp_path, folds):
    with pytest.raises(ValueError, match="out of range"):
        run_crossval(_config(emodb_root), tmp_path, folds=folds, cache_dir=tmp_path / "c",
                     progress=False)  # fmt: skip


def test_no_corpus_configured(tmp_path):
    with pytest.raises(ValueError, match="no corpus configured"):
        run_crossval(ExperimentConfig(), tmp_path, cache_dir=tmp_path / "c", progress=False)


def test_random_protocol_is_labelled_speaker_overlapping(emodb_root, full_run, tmp_path):
    _, _, _, cache = full_run
    base = _config(emodb_root, epochs=1)
    config = replace(base, data=replace(base.data, protocol="random"))
    summary = run_crossval(config, tmp_path, cache_dir=cache, progress=False)
    assert summary["n_folds"] == 1 and summary["speaker_overlap"] is True
    record = _fold(tmp_path, 0)
    assert record["speaker_overlap"] is True
    assert "NOT speaker-independent" in record["description"]
    text = (tmp_path / "summary.md").read_text()
    assert "SPEAKER-OVERLAPPING" in text
    assert "(speaker-independent)" not in text


def test_features_come_from_the_cache_folder(full_run):
    config, _, _, cache = full_run
    assert len(list(cache.rglob("*.npy"))) == len(config.features) * N_UTTS
    for spec in config.features:
        (folder,) = cache.glob(f"{spec.kind}-*")
        entries = list(folder.glob("*.npy"))
        assert len(entries) == N_UTTS
        assert np.load(entries[0]).shape[0] == make_kind(spec).dims
