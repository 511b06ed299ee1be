"""Unlabelled adaptation (``EmotionRecognizer.adapt``, ``emofuse adapt``), embeddings
(``EmotionRecognizer.embed``, ``predict --embeddings``) and the bundled model names."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from emofuse.cli import main
from emofuse.inference import EmotionRecognizer
from emofuse.inference.adapt import AdaptationError, adapt_pipeline
from emofuse.inference.recognizer import TorchBackend
from emofuse.pipeline import ModelFileError, load_model, load_pipeline
from emofuse.signal.audio import load_audio
from emofuse.testing import save_tiny_pipeline, synthetic_voice, tiny_pipeline

RATE = 16000


@pytest.fixture
def recordings(tmp_path) -> list[str]:
    """Three voices at a lower level than training audio, and a silent file."""
    paths = []
    for i, seconds in enumerate((2.0, 3.0, 1.5)):
        path = tmp_path / f"rec{i}.wav"
        sf.write(path, 0.2 * synthetic_voice(seconds, seed=10 + i), RATE)
        paths.append(str(path))
    sf.write(tmp_path / "quiet.wav", np.zeros(RATE, np.float32), RATE)
    return [*paths, str(tmp_path / "quiet.wav")]


def _frame_moments(pipeline, paths):
    """Per feature: mean of the raw frames of ``paths``, computed here independently."""
    totals: dict[str, list] = {}
    for path in paths:
        wave = torch.from_numpy(load_audio(path, RATE))
        with torch.no_grad():
            features = pipeline.frontend(wave[None], torch.tensor([wave.numel()]))
        for name, (frames, lengths) in features.items():
            valid = frames[0][:, : int(lengths[0])].double()
            totals.setdefault(name, []).append(valid)
    return {name: torch.cat(parts, dim=1).mean(dim=1) for name, parts in totals.items()}


def test_adapt_fits_the_normalisers_on_the_recordings(recordings):
    pipeline = tiny_pipeline().eval()
    adapted, report = adapt_pipeline(pipeline, recordings, min_seconds=5.0, prior_seconds=0)
    assert report == {"files": 3, "seconds": 6.5, "skipped_silent": 1, "prior_seconds": 0}
    expected = _frame_moments(pipeline, recordings[:3])
    for name, norm in adapted.normalizers.items():
        assert torch.allclose(norm.mean.double(), expected[name], atol=1e-3), name
    # the original is untouched and the two now standardise differently
    wave = torch.from_numpy(load_audio(recordings[0], RATE))[None]
    lengths = torch.tensor([wave.shape[1]])
    with torch.no_grad():
        assert not torch.allclose(pipeline(wave, lengths), adapted(wave, lengths))


def test_adapt_shrinks_towards_the_training_statistics(recordings):
    """6.5 s of audio against a prior of 6.5 s: the means land halfway."""
    pipeline = tiny_pipeline().eval()
    adapted, report = adapt_pipeline(pipeline, recordings, min_seconds=5.0, prior_seconds=6.5)
    assert report["prior_seconds"] == 6.5
    expected = _frame_moments(pipeline, recordings[:3])
    for name, norm in adapted.normalizers.items():
        prior = pipeline.normalizers[name].mean.double()
        share = (norm.mean.double() - expected[name]) / (prior - expected[name])  # 0.5: halfway
        assert torch.allclose(share, torch.full_like(share, 0.5), atol=0.01), name


def test_adapt_refuses_too_little_audio(recordings):
    with pytest.raises(AdaptationError, match=r"at least 60 s .* got 6\.5 s from 3 file\(s\)"):
        adapt_pipeline(tiny_pipeline(), recordings)


def test_adapt_reports_unreadable_files_and_goes_on(recordings, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio")
    seen = []
    _, report = adapt_pipeline(
        tiny_pipeline(), [str(broken), *recordings], min_seconds=5.0,
        on_error=lambda path, error: seen.append((path, str(error))),
    )  # fmt: skip
    assert report["files"] == 3
    assert seen and seen[0][0] == str(broken) and "broken.wav" in seen[0][1]




def test_recognizer_adapt(recordings):
    recognizer = EmotionRecognizer(TorchBackend(tiny_pipeline(), device="cpu"), vad=False)
    adapted = recognizer.adapt(recordings, min_seconds=5.0)
    assert adapted is not recognizer and adapted.adaptation["files"] == 3
    a, b = recognizer.predict(recordings[0]), adapted.predict(recordings[0])
    assert a.probabilities != b.probabilities


def test_cli_adapt_writes_a_model_that_predicts(recordings, tmp_path, capsys):
    model = save_tiny_pipeline(tmp_path / "tiny.pt")
    out = tmp_path / "adapted.pt"
    folder = str(tmp_path)  # the recordings' folder, with the silent file and tiny.pt in it
    assert main(["adapt", folder, "--model", str(model), "--out", str(out),
                 "--min-seconds", "5"]) == 0  # fmt: skip
    assert "adapted on 3 files (6.5 s; 1 silent skipped)" in capsys.readouterr().out
    loaded = load_pipeline(out)
    assert loaded.extra["adapted_on"]["files"] == 3
    command = ["predict", recordings[0], "--model", str(out), "--format", "json", "--no-vad"]
    assert main(command) == 0


def test_cli_adapt_too_little_audio_fails_clearly(recordings, tmp_path, capsys):
    model = save_tiny_pipeline(tmp_path / "tiny.pt")
    out = tmp_path / "adapted.pt"
    assert main(["adapt", *recordings, "--model", str(model), "--out", str(out)]) == 1
    assert "at least 60 s" in capsys.readouterr().err
    assert not out.exists()


def test_embed_is_the_mean_of_the_window_representations():
    pipeline = tiny_pipeline().eval()
    recognizer = EmotionRecognizer(TorchBackend(pipeline, device="cpu"), vad=False)
    wave = synthetic_voice(2.0)
    embedding = recognizer.embed(wave, sample_rate=RATE)
    assert embedding.shape == (pipeline.net.embedding_dim,)
    assert np.isfinite(embedding).all()
    centred = wave - wave.mean()
    with torch.no_grad():
        direct = pipeline.embed(torch.from_numpy(centred)[None], torch.tensor([wave.size]))
        logits = pipeline.net.classifier(direct)
    np.testing.assert_allclose(embedding, direct[0].numpy(), atol=1e-5)
    probs = recognizer.predict(wave, sample_rate=RATE).probabilities
    np.testing.assert_allclose(list(probs.values()), logits.softmax(1)[0].numpy(), atol=1e-5)


def test_predict_embeddings_writes_rows_and_names(tmp_path, capsys):
    model = save_tiny_pipeline(tmp_path / "tiny.pt")
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"v{i}.wav"))
        sf.write(paths[-1], synthetic_voice(1.0 + i, seed=i), RATE)
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio")
    out = tmp_path / "emb.npy"
    status = main(["predict", *paths, str(broken), "--model", str(model), "--no-vad",
                   "--embeddings", str(out)])  # fmt: skip
    assert status == 1  # the broken file is reported, the others answered
    rows = np.load(out)
    recognizer = EmotionRecognizer.load(model, vad=False)
    assert rows.shape == (3, recognizer.backend.pipeline.net.embedding_dim)
    np.testing.assert_allclose(rows[1], recognizer.embed(paths[1]), atol=1e-5)
    assert (tmp_path / "emb.txt").read_text().splitlines() == paths


def test_bundled_models_by_name():
    fast = load_model("fast")
    assert fast.labels and len(fast.features) >= 2
    with pytest.raises(ModelFileError, match="unknown bundled model 'medium'"):
        from emofuse.pipeline import load_bundled_pipeline

        load_bundled_pipeline("medium")


def test_the_temperature_relaxes_as_the_statistics_become_the_users(recordings):
    """A head tempered for clips meeting the training statistics (extra temperature 2):
    adapted on 6.5 s against a prior of 6.5 s it is tempered by 1.5, and says so."""
    from emofuse.inference.adapt import logit_scale

    pipeline = tiny_pipeline().eval()
    pipeline.extra = {"temperature": 2.0}
    assert logit_scale(pipeline, 0.0) == 1.0 and logit_scale(pipeline, 1.0) == 2.0
    adapted, _ = adapt_pipeline(pipeline, recordings, min_seconds=5.0, prior_seconds=6.5)
    ratio = adapted.net.classifier.weight / pipeline.net.classifier.weight
    assert torch.allclose(ratio, torch.full_like(ratio, 2.0 / 1.5), rtol=1e-3)
    assert adapted.extra["temperature"] == pytest.approx(1.5, rel=1e-3)
    untempered, _ = adapt_pipeline(tiny_pipeline().eval(), recordings, min_seconds=5.0)
    assert torch.equal(untempered.net.classifier.weight, pipeline.net.classifier.weight)


def test_an_adapted_model_drops_the_measured_bf16_agreement(recordings):
    """Its normalisation changed, so auto runs it in float32 until it is measured again."""
    pipeline = tiny_pipeline()
    pipeline.extra = {"bf16_agreement": {"emodb": 0.999}, "temperature": 2.0}
    adapted, _ = adapt_pipeline(pipeline, recordings, min_seconds=5.0, prior_seconds=6.5)
    assert "bf16_agreement" not in adapted.extra and adapted.extra["temperature"] != 2.0
    assert pipeline.extra["bf16_agreement"] == {"emodb": 0.999}  # the original is unchanged
