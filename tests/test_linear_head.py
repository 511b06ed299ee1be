"""The logistic head on pooled statistics: what it trains is what the pipeline computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emofuse.features import FeatureSpec
from emofuse.model import ModelConfig
from emofuse.pipeline import EmotionPipeline
from emofuse.training.linear_head import (
    check_linear_pipeline,
    fit_logistic_head,
    fit_temperature,
    pooled_moments,
    pooled_statistics,
    utterance_moments,
)

pytest.importorskip("sklearn")
DIMS = 16


def linear_pipeline() -> EmotionPipeline:
    spec = FeatureSpec.from_dict(
        {"kind": "mfcc", "settings": {"n_mfcc": DIMS}, "branch": {"type": "identity"}}
    )
    model = ModelConfig(n_classes=3, d_model=DIMS, n_heads=2, lstm_hidden=DIMS // 2,
                        temporal="none", pooling="stats")  # fmt: skip
    return EmotionPipeline([spec], model, ("neutral", "happy", "sad"), pretrained=False).eval()


def synthetic_corpora(seed: int = 0):
    """Frames whose class shifts a few rows; each speaker adds an offset of its own to every
    row (a recording condition), larger than the emotion."""
    rng = np.random.default_rng(seed)
    classes = rng.standard_normal((3, DIMS)) * 1.5
    arrays, labels, groups, strata = [], [], [], []
    for corpus in ("a", "b", "c"):
        for speaker in range(4):
            offset = rng.standard_normal(DIMS) * 4
            for k in range(12):
                label = k % 3
                frames = rng.standard_normal((DIMS, rng.integers(40, 90)))
                arrays.append(frames + (classes[label] + offset)[:, None])
                labels.append(label)
                groups.append((corpus, speaker))
                strata.append(corpus)
    return arrays, labels, groups, strata


def test_pooled_statistics_are_what_the_pipeline_pools():
    pipeline = linear_pipeline()
    frames = np.random.default_rng(1).standard_normal((DIMS, 57)) * 3 + 2
    mean, std = np.linspace(-1, 1, DIMS), np.linspace(0.5, 2, DIMS)
    norm = pipeline.normalizers["mfcc"]
    norm.mean.copy_(torch.from_numpy(mean).float())
    norm.std.copy_(torch.from_numpy(std).float())
    x = torch.from_numpy(frames).float()[None]
    embedded = pipeline.net.embed(pipeline.normalised({"mfcc": (x, torch.tensor([57]))}))
    ours = pooled_statistics(utterance_moments(frames), mean, std)
    np.testing.assert_allclose(embedded[0].detach().numpy(), ours, rtol=1e-4, atol=1e-4)


def test_pooled_moments_equal_the_moments_of_all_frames():
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal((DIMS, n)) + i for i, n in enumerate((10, 33, 7))]
    mean, std, count = pooled_moments([utterance_moments(a) for a in arrays])
    joined = np.concatenate(arrays, axis=1)
    assert count == joined.shape[1]
    np.testing.assert_allclose(mean, joined.mean(1))
    np.testing.assert_allclose(std, joined.std(1))


def test_fit_learns_emotion_across_speaker_offsets():
    arrays, labels, groups, strata = synthetic_corpora()
    pipeline = linear_pipeline()
    report = fit_logistic_head(pipeline, [utterance_moments(a) for a in arrays], labels,
                               groups, strata, c=0.1)  # fmt: skip
    assert report["calibration_corpora"] == ["a", "b", "c"] and report["temperature"] > 0
    # the prior is the statistics of every training frame
    all_mean, all_std, _ = pooled_moments([utterance_moments(a) for a in arrays])
    np.testing.assert_allclose(pipeline.normalizers["mfcc"].mean.numpy(), all_mean, rtol=1e-5)
    # a speaker's clips, standardised with that speaker's own statistics, are told apart
    rng = np.random.default_rng(9)
    test, test_labels = [], []
    offset = rng.standard_normal(DIMS) * 4
    classes = np.random.default_rng(0).standard_normal((3, DIMS)) * 1.5  # as synthetic_corpora
    for k in range(30):
        test.append(rng.standard_normal((DIMS, 60)) + (classes[k % 3] + offset)[:, None])
        test_labels.append(k % 3)
    mean, std, _ = pooled_moments([utterance_moments(a) for a in test])
    norm = pipeline.normalizers["mfcc"]
    norm.mean.copy_(torch.from_numpy(mean).float())
    norm.std.copy_(torch.from_numpy(std).float())
    x = torch.from_numpy(np.stack(test)).float()
    with torch.no_grad():
        logits = pipeline.forward_features({"mfcc": (x, torch.full((30,), 60))})
    assert (logits.argmax(1).numpy() == np.array(test_labels)).mean() > 0.9


def test_temperature_undoes_overconfidence():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 4000)
    features = rng.standard_normal((4000, 4)) + 1.5 * np.eye(4)[labels]
    calibrated = 1.5 * features  # the true log-posteriors of these Gaussian classes
    assert fit_temperature(calibrated, labels) == pytest.approx(1.0, abs=0.1)
    assert fit_temperature(3 * calibrated, labels) == pytest.approx(3.0, rel=0.1)
    # weights: a half of the clips twice as overconfident, weighted out, leaves T near 3
    doubled = np.vstack([3 * calibrated, 6 * calibrated])
    weights = np.r_[np.ones(len(labels)), np.full(len(labels), 1e-6)]
    assert fit_temperature(doubled, np.r_[labels, labels], weights) == pytest.approx(3.0, rel=0.1)


def test_wrong_pipeline_is_refused():
    from emofuse.testing import tiny_pipeline

    with pytest.raises(ValueError, match="branch type identity"):
        check_linear_pipeline(tiny_pipeline())


def test_train_writes_a_logistic_model_that_loads(tmp_path):
    """``emofuse train`` with ``train.head: logistic`` on two fake corpora and a copy of one
    (its speakers normalised apart): a model file the recogniser reads, and its report."""
    import json

    import fake_corpora

    from emofuse.config import CorpusSpec, DataConfig, ExperimentConfig, TrainConfig
    from emofuse.experiments.deployable import first_listed, normalisation_groups, train_logistic
    from emofuse.experiments.loading import load_manifest
    from emofuse.features import feature_spec
    from emofuse.inference import EmotionRecognizer

    emodb = fake_corpora.make_emodb(tmp_path / "emodb", seconds=0.5)
    copy = fake_corpora.make_emodb(tmp_path / "copy" / "emodb", seconds=0.5)
    emovo = fake_corpora.make_emovo(tmp_path / "emovo")
    spec = feature_spec("mfcc", n_mfcc=DIMS)
    config = ExperimentConfig(
        features=[FeatureSpec(spec.name, spec.kind, spec.settings, {**spec.branch,
                                                                  "type": "identity"})],
        model=ModelConfig(d_model=DIMS, n_heads=2, lstm_hidden=DIMS // 2, temporal="none",
                          pooling="stats"),
        train=TrainConfig(head="logistic", head_c=0.1, eval_window_seconds=1.0, device="cpu"),
        data=DataConfig(corpora=[CorpusSpec("emodb", str(emodb)), CorpusSpec("emovo", str(emovo)),
                                 CorpusSpec("emodb", str(copy))], task="bundled7"),
    )  # fmt: skip
    _, utterances, _ = load_manifest(config)
    groups = normalisation_groups(config, utterances)
    originals = {g for g, u in zip(groups, utterances, strict=True) if str(emodb) in str(u.path)}
    assert originals and originals.isdisjoint(
        {g for g, u in zip(groups, utterances, strict=True) if str(copy) in str(u.path)}
    )
    calibrated = first_listed(config, groups)  # the temperature sees no degraded copy
    assert calibrated == [str(copy) not in str(u.path) for u in utterances] and any(calibrated)
    report = train_logistic(config, tmp_path / "run", cache_dir=tmp_path / "cache",
                            progress=False)  # fmt: skip
    assert report["head"] == "logistic" and report["calibration_corpora"] == ["emodb", "emovo"]
    assert json.loads((tmp_path / "run" / "training.json").read_text())["temperature"] > 0
    recognizer = EmotionRecognizer.load(tmp_path / "run" / "model.pt", vad=False)
    prediction = recognizer.predict(next((emodb / "wav").iterdir()))
    assert prediction.label in recognizer.labels
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
