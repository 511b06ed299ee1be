"""Voice activity detection: silero's model run in torch, speech regions and the segmenter."""

from __future__ import annotations

import math
import tracemalloc
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from real_audio import corpus_files, speech_files

from emofuse.signal.vad import (
    CHUNK,
    SAMPLE_RATE,
    SpeechDetector,
    VADUnavailable,
    silero_weights_path,
)
from emofuse.signal.vad_segmenter import SpeechSegmenter, VADSettings, speech_regions
from emofuse.testing import synthetic_speech, synthetic_voice


@pytest.fixture(scope="module")
def detector() -> SpeechDetector:
    try:
        return SpeechDetector.load()
    except VADUnavailable as error:
        pytest.skip(str(error))


@pytest.fixture
def silero():
    """The silero_vad package; importing it sets torch's threads to 1, restored afterwards."""
    threads = torch.get_num_threads()
    try:
        import silero_vad
    except ImportError as error:
        pytest.skip(f"silero_vad cannot be imported ({error}); nothing to compare against")
    finally:
        torch.set_num_threads(threads)
    yield silero_vad
    torch.set_num_threads(threads)


def load(path: Path) -> np.ndarray:
    from emofuse.signal.audio import load_audio

    return load_audio(path, SAMPLE_RATE)


# ---------------------------------------------------------------------------- model


def test_weight_files_located_without_importing_silero() -> None:
    import sys

    if "silero_vad" in sys.modules:
        pytest.skip("silero_vad already imported by another test in this process")
    try:
        paths = [silero_weights_path("jit"), silero_weights_path("safetensors")]
    except VADUnavailable as error:
        pytest.skip(str(error))
    assert all(path.is_file() for path in paths)
    assert "silero_vad" not in sys.modules
    with pytest.raises(ValueError, match="kind"):
        silero_weights_path("onnx")


def test_matches_official_jit_model(detector: SpeechDetector, silero) -> None:
    threads = torch.get_num_threads()
    with warnings.catch_warnings():  # its own importlib.resources and torch.jit deprecations
        warnings.simplefilter("ignore", DeprecationWarning)
        model = silero.load_silero_vad()
    torch.set_num_threads(threads)
    rng = np.random.default_rng(3)
    waves = [
        synthetic_speech(4.1),  # partial last chunk
        (0.05 * rng.standard_normal(CHUNK * 20)).astype(np.float32),
        np.concatenate([np.zeros(7000, np.float32), synthetic_speech(2.0, seed=1)]),
    ]
    ours = detector.probabilities(waves)
    for wave, mine in zip(waves, ours, strict=True):
        with torch.no_grad():
            reference = model.audio_forward(torch.from_numpy(wave)[None], SAMPLE_RATE)[0].numpy()
            model.reset_states()  # also chunk by chunk, as get_speech_timestamps calls it
            padded = np.pad(wave, (0, -wave.size % CHUNK))
            by_chunk = [model(torch.from_numpy(c), SAMPLE_RATE).item()
                        for c in padded.reshape(-1, CHUNK)]  # fmt: skip
        assert mine.shape == reference.shape == (math.ceil(wave.size / CHUNK),)
        np.testing.assert_allclose(mine, reference, atol=1e-4)
        np.testing.assert_allclose(mine, by_chunk, atol=1e-4)
    assert ours[0].max() > 0.5 and ours[1].max() < 0.5  # the comparison covers both regimes
    assert torch.get_num_threads() == threads


def test_safetensors_weights_load_with_the_same_layout(detector: SpeechDetector) -> None:
    """The package's safetensors file holds other weights (silero-vad#768); it still loads."""
    try:
        other = SpeechDetector.load(path=silero_weights_path("safetensors"))
    except VADUnavailable as error:
        pytest.skip(str(error))
    wave = synthetic_speech(3.0)
    mine, theirs = detector.probabilities([wave])[0], other.probabilities([wave])[0]
    assert theirs.shape == mine.shape
    assert theirs.max() > 0.5 and mine.max() > 0.5  # both detect the voice...
    assert other.probabilities([np.zeros_like(wave)])[0].max() < 0.1  # ...and not silence
    assert np.abs(mine - theirs).max() > 1e-3  # other weights: if equal, drop the JIT path


def test_batched_equals_alone(detector: SpeechDetector) -> None:
    rng = np.random.default_rng(0)
    lengths = [0, 1, 511, 512, 513, 3 * SAMPLE_RATE + 77, 5000]
    waves = [synthetic_speech(n / SAMPLE_RATE + 1, seed=i)[:n] + 0.01 * rng.standard_normal(n)
             for i, n in enumerate(lengths)]  # fmt: skip
    batched = detector.probabilities(waves)
    for wave, probs in zip(waves, batched, strict=True):
        alone = detector.probabilities([wave])[0]
        assert probs.dtype == np.float32 and probs.shape == (math.ceil(wave.size / CHUNK),)
        np.testing.assert_allclose(probs, alone, atol=1e-6)
    assert batched[5].max() > 0.5  # a real test: the long one holds speech


def test_stft_basis_is_a_hann_windowed_dft(detector: SpeechDetector) -> None:
    """The encoder replaces ``stft_conv`` by an rfft: the basis must be that DFT."""
    basis = detector.stft_conv.weight[:, 0, :].double()  # (258, 256)
    n = torch.arange(256, dtype=torch.float64)
    angle = 2 * math.pi * torch.arange(129, dtype=torch.float64)[:, None] * n / 256
    hann = torch.hann_window(256, periodic=True, dtype=torch.float64)
    assert (basis[:129] - hann * torch.cos(angle)).abs().max() < 1e-6
    assert (basis[129:] + hann * torch.sin(angle)).abs().max() < 1e-6
    frames = torch.randn(300, 4, 256, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        spec = frames @ detector.stft_conv.weight[:, 0, :].T
        conv = torch.sqrt(spec[..., :129] ** 2 + spec[..., 129:] ** 2)
        fft = torch.fft.rfft(frames * detector.window).abs()
    assert (conv - fft).abs().max() < 1e-5 * conv.max()


@pytest.mark.parametrize(
    "lengths",
    [[48000] * 4, [48000, 40000, 52000], [160000, 0, 8000, 513]],
    ids=["equal", "padded", "packed"],
)
def test_batch_layouts_equal_alone(detector: SpeechDetector, lengths: list[int]) -> None:
    waves = [synthetic_speech(n / SAMPLE_RATE + 1, seed=i)[:n] for i, n in enumerate(lengths)]
    for wave, probs in zip(waves, detector.probabilities(waves), strict=True):
        np.testing.assert_allclose(probs, detector.probabilities([wave])[0], atol=1e-5)


def test_stream_over_odd_blocks_equals_whole_file(detector: SpeechDetector) -> None:
    gap = np.zeros(9000, np.float32)
    wave = np.concatenate([synthetic_speech(3.0), gap, synthetic_speech(1.5, seed=2)])
    whole = detector.probabilities([wave])[0]
    rng = np.random.default_rng(1)
    for sizes in ([1, 7, 511, 1000, 64, 513], [CHUNK], [len(wave)]):
        stream, out, at = detector.stream(), [], 0
        while at < wave.size:
            size = int(sizes[len(out) % len(sizes)] if len(sizes) > 1 else sizes[0])
            size = int(rng.integers(1, 2000)) if size == 1000 else size
            out.append(stream.feed(wave[at : at + size]))
            at += size
        out.append(stream.finish())
        np.testing.assert_allclose(np.concatenate(out), whole, atol=1e-5)
    with pytest.raises(RuntimeError):
        stream.feed(wave[:10])


def test_rejects_multichannel(detector: SpeechDetector) -> None:
    with pytest.raises(ValueError, match="mono"):
        detector.probabilities([np.zeros((2, 1000), np.float32)])


def nonspeech_signals(seconds: float = 5.0) -> dict[str, np.ndarray]:
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    rng = np.random.default_rng(0)

    def noise(dbfs: float) -> np.ndarray:
        return rng.standard_normal(n) * 10 ** (dbfs / 20)

    clicks = np.zeros(n)
    clicks[:: SAMPLE_RATE // 2] = 0.9
    signals = {
        "digital silence": np.zeros(n),
        "white noise -55 dBFS": noise(-55),
        "white noise -45 dBFS": noise(-45),
        "white noise -20 dBFS": noise(-20),
        "50 Hz hum": 0.1 * np.sin(2 * np.pi * 50 * t),
        "60 Hz hum + harmonics": sum(
            0.05 / k * np.sin(2 * np.pi * 60 * k * t) for k in range(1, 6)
        ),
        "clicks every 0.5 s": clicks,
        "1 kHz tone": 0.3 * np.sin(2 * np.pi * 1000 * t),
    }
    return {name: wave.astype(np.float32) for name, wave in signals.items()}


def test_nonspeech_gives_no_speech_region(detector: SpeechDetector) -> None:
    signals = nonspeech_signals()
    probs = detector.probabilities(list(signals.values()))
    for (name, wave), p in zip(signals.items(), probs, strict=True):
        assert speech_regions(p, wave.size) == [], f"{name}: max probability {p.max():.3f}"
        assert p.max() < 0.5, f"{name}: max probability {p.max():.3f}"


def test_synthetic_voice_is_not_reliably_speech(detector: SpeechDetector) -> None:
    """emofuse.testing.synthetic_voice is a harmonic tone, not speech, to silero: measured, it
    never holds 0.5 long enough for a region. Recorded here so nobody relies on it as speech."""
    wave = synthetic_voice(5.0)
    probs = detector.probabilities([wave])[0]
    regions = speech_regions(probs, wave.size)
    covered = sum(end - start for start, end in regions) / wave.size
    assert covered < 0.2, f"synthetic_voice now detected ({covered:.0%}); use it in tests"


@pytest.mark.parametrize("corpus", ["emodb", "ravdess", "emovo"])
def test_real_speech_is_not_dropped(detector: SpeechDetector, corpus: str) -> None:
    files = corpus_files(corpus, 6)
    waves = [load(path) for path in files]
    for path, wave, probs in zip(files, waves, detector.probabilities(waves), strict=True):
        regions = speech_regions(probs, wave.size)
        share = sum(end - start for start, end in regions) / wave.size
        assert regions, f"{path.name}: no speech found (max probability {probs.max():.3f})"
        assert share > 0.25, f"{path.name}: only {share:.0%} speech"


# ---------------------------------------------------------------------------- regions


def regions_of(runs: list[tuple[float, int]], settings: VADSettings | None = None, tail=0):
    settings = settings or VADSettings()
    probs = np.concatenate([np.full(count, value) for value, count in runs])
    n_samples = probs.size * CHUNK - tail
    return speech_regions(probs, n_samples, settings), n_samples


def test_regions_start_pad_and_end_at_file_end() -> None:
    regions, n = regions_of([(0.1, 5), (0.9, 20)], tail=100)
    assert regions == [(5 * CHUNK - 480, n)]  # open speech runs to the end of the file


def test_regions_hysteresis_between_thresholds() -> None:
    # 0.4 lies between neg_threshold (0.35) and threshold: it neither starts nor ends speech
    assert regions_of([(0.4, 30)])[0] == []
    regions, _ = regions_of([(0.1, 2), (0.6, 3), (0.4, 20), (0.1, 10)])
    assert regions == [(2 * CHUNK - 480, 25 * CHUNK + 480)]


def test_regions_min_silence_bridges_short_gaps() -> None:
    # 3 chunks below neg: 1024 samples from the first < 1600 min silence -> one region
    one, _ = regions_of([(0.9, 10), (0.1, 3), (0.9, 10), (0.1, 10)])
    assert one == [(0, 23 * CHUNK + 480)]
    # 5 chunks: silence reaches 2048 >= 1600 -> two regions, padded into the gap
    two, _ = regions_of([(0.9, 10), (0.1, 5), (0.9, 10), (0.1, 10)])
    assert two == [(0, 10 * CHUNK + 480), (15 * CHUNK - 480, 25 * CHUNK + 480)]


def test_regions_min_speech_drops_short_bursts() -> None:
    assert regions_of([(0.1, 5), (0.9, 7), (0.1, 10)])[0] == []  # 3584 samples < 4000
    assert len(regions_of([(0.1, 5), (0.9, 8), (0.1, 10)])[0]) == 1  # 4096 > 4000


def test_regions_close_neighbours_share_the_gap() -> None:
    settings = VADSettings(pad_seconds=0.2)  # 3200 samples: the 2560-sample gap is < 2 * pad
    regions, _ = regions_of([(0.9, 10), (0.1, 5), (0.9, 10), (0.1, 20)], settings)
    assert regions == [(0, 10 * CHUNK + 1280), (15 * CHUNK - 1280, 25 * CHUNK + 3200)]


def test_regions_max_speech_split_at_longest_silence_or_hard() -> None:
    settings = VADSettings(max_speech_seconds=2.0, min_silence_seconds=0.5)
    # one 4-chunk dip (2048 samples > 98 ms, < 0.5 s) inside 3 s of speech: split there
    regions, _ = regions_of([(0.9, 30), (0.1, 4), (0.9, 60), (0.1, 40)], settings)
    assert regions[0] == (0, 30 * CHUNK + 480)
    assert regions[1][0] == 34 * CHUNK - 480
    # no dip: hard cuts; every padded region within max_speech
    hard, _ = regions_of([(0.9, 300), (0.1, 40)], settings)
    assert len(hard) >= 4
    assert all(0 < end - start <= 2.0 * SAMPLE_RATE for start, end in hard)
    assert all(a[1] <= b[0] for a, b in zip(hard, hard[1:], strict=False))


def test_regions_validate_input() -> None:
    with pytest.raises(ValueError, match="probabilities"):
        speech_regions(np.zeros(3), n_samples=5 * CHUNK)
    with pytest.raises(ValueError, match="threshold"):
        VADSettings(threshold=1.5)
    with pytest.raises(ValueError, match="max_speech_seconds"):
        VADSettings(max_speech_seconds=0.05)


def random_runs(rng: np.random.Generator, chunks: int) -> np.ndarray:
    """Piecewise-constant probabilities with noise, like a VAD's output."""
    out = []
    while sum(map(len, out)) < chunks:
        level = rng.choice([0.02, 0.2, 0.4, 0.45, 0.55, 0.8, 0.97])
        out.append(np.clip(level + 0.08 * rng.standard_normal(rng.integers(1, 40)), 0, 1))
    return np.concatenate(out)[:chunks]


@pytest.mark.parametrize(
    "settings",
    [
        VADSettings(),
        VADSettings(max_speech_seconds=math.inf),
        VADSettings(max_speech_seconds=1.5),
        VADSettings(threshold=0.6, neg_threshold=0.3, pad_seconds=0.1, max_speech_seconds=3.0),
        VADSettings(min_speech_seconds=0.5, min_silence_seconds=0.3, pad_seconds=0.0),
    ],
)
def test_regions_equal_silero_get_speech_timestamps(silero, settings: VADSettings) -> None:
    from silero_vad.utils_vad import get_speech_timestamps_from_probs

    rng = np.random.default_rng(7)
    for trial in range(40):
        chunks = int(rng.integers(1, 600))
        n_samples = chunks * CHUNK - int(rng.integers(0, CHUNK))
        probs = random_runs(rng, chunks).astype(np.float32)
        expected = get_speech_timestamps_from_probs(
            probs.tolist(),
            threshold=settings.threshold,
            neg_threshold=settings.neg_threshold,
            min_speech_duration_ms=settings.min_speech_seconds * 1000,
            min_silence_duration_ms=settings.min_silence_seconds * 1000,
            speech_pad_ms=settings.pad_seconds * 1000,
            max_speech_duration_s=settings.max_speech_seconds,
            audio_length_samples=n_samples,
        )
        got = speech_regions(probs, n_samples, settings)
        assert got == [(d["start"], d["end"]) for d in expected], f"trial {trial}"


# ---------------------------------------------------------------------------- segmenter


def blocks_of(wave: np.ndarray, sizes: list[int]) -> Iterator[np.ndarray]:
    at, i = 0, 0
    while at < wave.size:
        yield wave[at : at + sizes[i % len(sizes)]]
        at += sizes[i % len(sizes)]
        i += 1


def check_tiling(stretches, wave: np.ndarray, settings: VADSettings) -> None:
    assert stretches[0].start == 0 and stretches[-1].end == wave.size
    for a, b in zip(stretches, stretches[1:], strict=False):
        assert a.end == b.start and not (not a.speech and not b.speech)  # gaps merged
    for s in stretches:
        assert s.end > s.start
        if s.speech:
            assert s.end - s.start <= settings.max_speech_seconds * SAMPLE_RATE
            np.testing.assert_array_equal(s.samples, wave[s.start : s.end])
        else:
            assert s.samples is None


def test_segmenter_equals_speech_regions_on_speech_with_gaps(detector: SpeechDetector) -> None:
    speech = [load(path) for path in speech_files("emodb", 3) + speech_files("ravdess", 2)]
    gaps = [0.05, 0.5, 2.0, 0.12, 1.0, 0.3]
    parts = [np.zeros(int(0.3 * SAMPLE_RATE), np.float32)]
    for wave, gap in zip(speech, gaps[: len(speech)], strict=True):
        parts += [wave, np.zeros(int(gap * SAMPLE_RATE) + 17, np.float32)]
    wave = np.concatenate(parts)
    expected = speech_regions(detector.probabilities([wave])[0], wave.size)
    assert len(expected) >= len(speech) - 1  # real speech was found
    for settings, sizes in [(VADSettings(), [4000, 333, 16000]), (VADSettings(), [wave.size])]:
        stretches = list(SpeechSegmenter(detector, settings).split(blocks_of(wave, sizes)))
        check_tiling(stretches, wave, settings)
        assert [(s.start, s.end) for s in stretches if s.speech] == expected
    # with splits at max_speech: still the same regions, each within the bound
    short = VADSettings(max_speech_seconds=1.0, pad_seconds=0.1)
    stretches = list(SpeechSegmenter(detector, short).split(blocks_of(wave, [1234])))
    check_tiling(stretches, wave, short)
    assert [(s.start, s.end) for s in stretches if s.speech] == speech_regions(
        detector.probabilities([wave])[0], wave.size, short
    )


def test_segmenter_says_no_speech_once_the_speech_after_it_is_sure(
    detector: SpeechDetector,
) -> None:
    """The silence before speech is yielded about min_speech after the speech starts (here
    within 1 s of its end), not when that speech ends."""
    speech = load(speech_files("emodb", 1)[0])
    wave = np.concatenate([np.zeros(3 * SAMPLE_RATE, np.float32), speech,
                           np.zeros(SAMPLE_RATE, np.float32)])  # fmt: skip
    read = [0]

    def blocks() -> Iterator[np.ndarray]:
        for block in blocks_of(wave, [1600]):
            read[0] += block.size
            yield block

    yielded = [(s, read[0]) for s in SpeechSegmenter(detector).split(blocks())]
    (silence, seen), (talk, _) = yielded[0], yielded[1]
    assert not silence.speech and talk.speech and silence.end == talk.start
    assert silence.end <= seen <= silence.end + SAMPLE_RATE < talk.end
    check_tiling([s for s, _ in yielded], wave, VADSettings())


def test_segmenter_without_speech_and_empty(detector: SpeechDetector) -> None:
    silence = np.zeros(20000, np.float32)
    stretches = list(SpeechSegmenter(detector).split(blocks_of(silence, [3000])))
    assert [(s.start, s.end, s.speech) for s in stretches] == [(0, 20000, False)]
    assert list(SpeechSegmenter(detector).split([])) == []


def test_segmenter_memory_is_bounded(detector: SpeechDetector) -> None:
    """Four minutes of speech and pauses hold well under a tenth of the file in memory."""
    base = load(speech_files("ravdess", 1)[0])
    piece = np.concatenate([base, np.zeros(SAMPLE_RATE, np.float32)])
    repeats = int(240 * SAMPLE_RATE / piece.size)

    def blocks() -> Iterator[np.ndarray]:
        for _ in range(repeats):
            yield from blocks_of(piece.copy(), [8000])

    settings = VADSettings(max_speech_seconds=10.0)
    tracemalloc.start()
    try:
        speech, total = 0, 0
        for stretch in SpeechSegmenter(detector, settings).split(blocks()):
            total = stretch.end
            speech += stretch.speech
            del stretch
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == repeats * piece.size and speech >= repeats // 2
    assert peak < 0.1 * total * 4, f"peak {peak / 1e6:.1f} MB for {total * 4 / 1e6:.1f} MB"
