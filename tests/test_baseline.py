"""The eGeMAPS + SVM baseline inside the same cross-validation harness."""

from __future__ import annotations

import json

import fake_corpora
import numpy as np
import pytest

from emofuse.config import CorpusSpec, DataConfig, ExperimentConfig, TrainConfig
from emofuse.experiments.crossval import run_crossval
from emofuse.experiments.loading import prepare_experiment

pytest.importorskip(
    "opensmile", reason="the baseline needs opensmile (pip install emofuse[baseline])"
)
pytest.importorskip("sklearn", reason="the baseline needs scikit-learn")

from emofuse.experiments.baseline import egemaps_features  # noqa: E402

SPEAKERS = ("03", "08", "10", "11")
STEMS = tuple(f"{s}a0{v}{c}{'ab'[v - 1]}" for s in SPEAKERS for c in "WFTN" for v in (1, 2))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("emodb")
    for i, stem in enumerate(STEMS):
        fake_corpora.write_audio(root / "wav" / f"{stem}.wav", seconds=0.6, seed=i)
    return root


def _config(root) -> ExperimentConfig:
    return ExperimentConfig(
        train=TrainConfig(seed=1), data=DataConfig([CorpusSpec("emodb", str(root))])
    )


def test_functionals_are_88_and_cached(root, tmp_path, monkeypatch):
    utterances = prepare_experiment(_config(root)).utterances
    first = egemaps_features(utterances[:3], tmp_path)
    assert all(v.shape == (88,) and np.isfinite(v).all() for v in first.values())
    monkeypatch.setattr(
        "emofuse.experiments.baseline.egemaps_extractor", lambda: pytest.fail("cache miss")
    )
    again = egemaps_features(utterances[:3], tmp_path)
    for key, values in first.items():
        np.testing.assert_array_equal(again[key], values)


def test_baseline_crossval_writes_the_same_outputs(root, tmp_path):
    out = tmp_path / "svm"
    summary = run_crossval(
        _config(root), out, system="egemaps-svm", cache_dir=tmp_path / "c", progress=False
    )
    assert summary["system"] == "egemaps-svm" and len(summary["folds"]) == 4
    for i in range(4):
        fold = json.loads((out / f"fold_{i:02d}.json").read_text())
        assert fold["system"] == "egemaps-svm" and fold["best_epoch"] is None
        assert set(fold["svm_params"]) == {"C", "gamma"}
        assert not set(fold["test_speakers"]) & set(fold["train_speakers"])
        posteriors = np.array([p["posteriors"] for p in fold["predictions"]])
        # Posteriors are the SVM's one-hot decisions; Platt-scaled probabilities ride along.
        posteriors = np.array([p["posteriors"] for p in fold["predictions"]])
        assert set(np.unique(posteriors)) <= {0.0, 1.0} and (posteriors.sum(1) == 1).all()
        probabilities = np.array([p["probabilities"] for p in fold["predictions"]])
        assert (probabilities >= 0).all() and np.allclose(probabilities.sum(1), 1, atol=1e-4)
        assert len(np.unique(probabilities)) > 2
        assert 0 <= fold["ua"] <= 1
    text = (out / "summary.md").read_text()
    assert "egemaps-svm" in text and "| - |" in text
    assert (out / "confusion.png").exists() and not (out / "learning_curves.png").exists()


def test_systems_never_mix_in_one_folder(root, tmp_path):
    out = tmp_path / "svm"
    run_crossval(
        _config(root), out, system="egemaps-svm", folds=[0], cache_dir=tmp_path, progress=False
    )
    with pytest.raises(ValueError, match="egemaps-svm"):
        run_crossval(_config(root), out, system="emofuse", cache_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="unknown system"):
        run_crossval(_config(root), out, system="svm", cache_dir=tmp_path, progress=False)
