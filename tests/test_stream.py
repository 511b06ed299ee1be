"""Live streams (:meth:`EmotionRecognizer.stream`): the segments of a recording fed in chunks of
any size equal its timeline, events come in order and early, inputs of any rate and format,
memory bounded, bad chunks refused clearly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
from real_audio import speech_files

from emofuse.inference.recognizer import EmotionRecognizer, TorchBackend
from emofuse.inference.stream import decode_pcm
from emofuse.signal.audio import load_audio
from emofuse.signal.vad_segmenter import VADSettings
from emofuse.testing import tiny_pipeline

RATE = 16000


@pytest.fixture(scope="module")
def recognizer() -> EmotionRecognizer:
    return EmotionRecognizer(TorchBackend(tiny_pipeline(), device="cpu"))  # with VAD


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """About 20 s of real speech with pauses and a 4 s silence in the middle."""
    clips = [load_audio(f, RATE) for f in speech_files("emodb", 6)]
    pause = np.zeros(RATE // 2, np.float32)
    parts = [clips[0], pause, clips[1], np.zeros(4 * RATE, np.float32), clips[2], pause,
             clips[3], clips[4], pause, clips[5]]  # fmt: skip
    return np.concatenate(parts)


def _streamed(stream, wave: np.ndarray, sizes: list[int]) -> list:
    events, start, i = [], 0, 0
    while start < wave.size:
        size = sizes[i % len(sizes)]
        events += stream.feed(wave[start : start + size])
        start, i = start + size, i + 1
    return events + stream.close()


def _assert_same_segments(events: list, timeline: list) -> None:
    segments = [e.segment for e in events if e.type == "segment"]
    assert len(segments) == len(timeline)
    for got, want in zip(segments, timeline, strict=True):
        assert (got.start, got.end, got.label, got.silent, got.reason) == (
            want.start, want.end, want.label, want.silent, want.reason)  # fmt: skip
        np.testing.assert_allclose(list(got.probabilities.values()),
                                   list(want.probabilities.values()), atol=1e-4)  # fmt: skip


@pytest.mark.parametrize("sizes", [[RATE * 100], [RATE], [1234], [160, 7, 3000, 512]])
def test_stream_segments_equal_the_timeline(recognizer, speech, tmp_path, sizes):
    path = tmp_path / "speech.wav"
    sf.write(path, speech, RATE)
    timeline = list(recognizer.timeline(path))
    assert {s.label for s in timeline} & {"no speech"} and len(timeline) > 8
    _assert_same_segments(_streamed(recognizer.stream(), speech, sizes), timeline)


def test_stream_equals_the_timeline_when_speech_is_split_and_adapting(recognizer, speech):
    """Speech stretches longer than ``max_speech_seconds`` are split after the fact at their
    longest pause: windows before a possible split wait for it. With adaptation, each window
    sees the statistics of those before it, in the stream as in the timeline."""
    short = EmotionRecognizer(recognizer.backend, vad=recognizer.vad,
                              vad_settings=VADSettings(max_speech_seconds=4.0))  # fmt: skip
    timeline = list(short.timeline(speech, sample_rate=RATE, adapt=True))
    assert max(s.end for s in timeline if not s.silent) > 4.0
    _assert_same_segments(_streamed(short.stream(adapt=True), speech, [2000]), timeline)


def test_stream_without_vad_equals_the_timeline(speech):
    plain = EmotionRecognizer(TorchBackend(tiny_pipeline(), device="cpu"), vad=False)
    timeline = list(plain.timeline(speech, sample_rate=RATE))
    events = _streamed(plain.stream(), speech, [999])
    _assert_same_segments(events, timeline)
    assert [e.type for e in events if e.type.startswith("speech")] == ["speech_start",
                                                                       "speech_end"]  # fmt: skip


def test_events_come_in_order_and_as_soon_as_decided(recognizer, speech):
    """speech_start before a stretch's segments, speech_end after; segments tile the stream;
    a partial at most once per hop, covering the stretch so far; a window's segment is out
    within about one hop (plus VAD's few chunks) of its audio. (Pauses under 1 s do not end
    speech here, so stretches are long enough for several windows; never split, they need not
    wait for a split's place.)"""
    settings = VADSettings(min_silence_seconds=1.0, max_speech_seconds=math.inf)
    patient = EmotionRecognizer(recognizer.backend, vad=recognizer.vad, vad_settings=settings)
    stream, hop = patient.stream(), recognizer.backend.hop_seconds
    timed, fed = [], 0
    for start in range(0, speech.size, 1600):  # 100 ms chunks, as a microphone sends them
        chunk = speech[start : start + 1600]
        fed += chunk.size
        timed += [(fed / RATE, e) for e in stream.feed(chunk)]
    timed += [(speech.size / RATE, e) for e in stream.close()]
    events = [e for _, e in timed]
    segments = [e for e in events if e.type == "segment"]
    assert segments[0].start == 0 and segments[-1].end == pytest.approx(speech.size / RATE)
    assert all(a.end == b.start for a, b in zip(segments, segments[1:], strict=False))
    inside = False
    for event in events:
        if event.type == "speech_start":
            assert not inside
            inside = True
        elif event.type == "speech_end":
            assert inside
            inside = False
        elif event.type == "partial":
            assert inside and event.probabilities and event.end > event.start
        elif not event.silent:
            assert inside
    partials = [t for t, e in timed if e.type == "partial"]
    assert len(partials) >= 3 and np.diff(partials).min() >= hop - 0.15
    late = [t - e.end for t, e in timed if e.type == "segment" and not e.silent and t < fed / RATE]
    assert max(late) <= hop + recognizer.backend.window_seconds + 0.5


def test_any_rate_and_format(recognizer, speech):
    """int16 PCM, float, stereo and 8 kHz streams give the same stretches."""
    want = [e.segment for e in _streamed(recognizer.stream(), speech, [4000])
            if e.type == "segment"]  # fmt: skip
    pcm = (speech * 32767).astype(np.int16)
    as_int = [e.segment for e in _streamed(recognizer.stream(), pcm, [4000])
              if e.type == "segment"]  # fmt: skip
    assert [(s.start, s.end, s.label) for s in as_int] == [(s.start, s.end, s.label) for s in want]
    stereo = [e.segment for e in _streamed(recognizer.stream(), np.stack([speech] * 2, 1), [4000])
              if e.type == "segment"]  # fmt: skip
    assert [(s.start, s.end) for s in stereo] == [(s.start, s.end) for s in want]
    import soxr

    slow = soxr.resample(speech, RATE, 8000).astype(np.float32)
    low = [e.segment for e in _streamed(recognizer.stream(8000), slow, [800])
           if e.type == "segment"]  # fmt: skip
    assert low[-1].end == pytest.approx(speech.size / RATE, abs=0.01)
    spoken = [s for s in low if not s.silent]
    assert abs(len(spoken) - len([s for s in want if not s.silent])) <= 2


def test_bad_chunks_are_refused_clearly(recognizer):
    stream = recognizer.stream()
    with pytest.raises(ValueError, match="non-finite"):
        stream.feed(np.array([0.1, np.nan], np.float32))
    with pytest.raises(ValueError, match="signed integer PCM or float"):
        stream.feed(np.zeros(10, np.uint16))
    with pytest.raises(ValueError, match="samples, channels"):
        stream.feed(np.zeros((2, 2, 2), np.float32))
    with pytest.raises(ValueError, match="decode_pcm"):
        stream.feed(b"\x00\x00")
    assert stream.feed(np.zeros(0, np.float32)) == []
    assert stream.close() == []  # nothing heard: nothing to say
    with pytest.raises(ValueError, match="closed"):
        stream.feed(np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="sample_rate"):
        recognizer.stream(sample_rate=0)
    with pytest.raises(ValueError, match="odd|whole number"):
        decode_pcm(b"\x00\x01\x02", "pcm_s16le")
    with pytest.raises(ValueError, match="unknown PCM format"):
        decode_pcm(b"", "mp3")
    np.testing.assert_array_equal(decode_pcm(b"\x00\x80\xff\x7f", "s16le"), [-32768, 32767])


def test_memory_is_bounded_over_a_long_stream(recognizer, speech):
    """Ten minutes of speech and silence: the audio held never exceeds the open speech
    stretch (twice max_speech_seconds while a split is undecided) plus a window."""
    stream = recognizer.stream()
    held, kinds = 0, set()
    rounds = round(600 * RATE / speech.size)
    for _ in range(rounds):
        for chunk in np.array_split(speech, 20):
            kinds |= {e.type for e in stream.feed(chunk)}
            held = max(held, sum(b.size for _, b in stream.engine.segmenter._audio.blocks))
    kinds |= {e.type for e in stream.close()}
    assert kinds == {"speech_start", "partial", "segment", "speech_end"}
    assert stream.seconds == pytest.approx(rounds * speech.size / RATE)
    limit = 2 * recognizer.vad_settings.max_speech_seconds + recognizer.backend.window_seconds
    assert held <= limit * RATE


def test_cli_streams_a_pipe_as_json_lines(recognizer, speech, tmp_path):
    """``emofuse live``: raw PCM on standard input, events on standard output,
    the same as the library's stream; a trailing half sample is said, not fatal."""
    import json
    import subprocess
    import sys

    from emofuse.testing import save_tiny_pipeline

    model = save_tiny_pipeline(tmp_path / "tiny.pt")
    pcm = (np.clip(speech, -1, 1) * 32767).astype("<i2")
    command = [sys.executable, "-m", "emofuse", "live", "--model", str(model), "--threads", "1"]
    run = subprocess.run(command, input=pcm.tobytes() + b"\x01", capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr.decode()
    assert "ignored 1 trailing bytes" in run.stderr.decode()
    lines = [json.loads(line) for line in run.stdout.decode().splitlines()]
    assert any(e["type"] == "partial" for e in lines)  # the pipe is read 100 ms at a time
    events = [e for e in lines if e["type"] != "partial"]  # partials depend on the chunking
    stream = EmotionRecognizer.load(model, device="cpu").stream()
    want = [e.to_dict() for e in stream.feed(pcm) + stream.close() if e.type != "partial"]
    assert [(e["type"], e["start"], e["end"]) for e in events] == [
        (w["type"], w["start"], w["end"]) for w in want]  # fmt: skip
    assert [e.get("label") for e in events] == [w.get("label") for w in want]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["live", "--rate", "4000"], "--rate must be an integer from 8000 to 192000 Hz, got 4000"),
        (["predict", "a.wav", "--format", "f32le"], "raw PCM of emofuse live"),
        # the old spelling, kept for one release: the same checks
        (["predict", "a.wav", "--stream"], "give '-' as the only input"),
        (["predict", "-", "--stream", "--format", "csv"], "--format names the input PCM"),
        (["predict", "-", "--stream", "--timeline"], "does not combine with --timeline"),
        (["predict", "-", "--stream", "--rate", "4000"], "from 8000 to 192000 Hz, got 4000"),
    ],
)
def test_cli_stream_options_are_checked(capsys, args, message):
    from emofuse.cli import main

    assert main(args) == 1
    assert message in capsys.readouterr().err


def test_streams_batched_together_answer_as_alone(recognizer, speech):
    """What the service does with concurrent streams: their new audio through voice activity
    in one pass (``feed_streams``), their windows in one forward pass, each adapting with its
    own statistics (``score_jobs``): the same answers as each stream alone."""
    from emofuse.inference.adapt import RunningAdaptation
    from emofuse.inference.timeline import WindowJob, score_jobs
    from emofuse.signal.vad import feed_streams

    detector, rng = recognizer.vad, np.random.default_rng(0)
    alone, together = [detector.stream() for _ in range(3)], [detector.stream() for _ in range(3)]
    waves = [speech, speech[::-1].copy(), 0.5 * speech]
    at, want, got = 0, [[], [], []], [[], [], []]
    while at < speech.size:
        sizes = rng.integers(100, 4000, 3)
        blocks = [w[at : at + n] for w, n in zip(waves, sizes, strict=True)]
        at += int(sizes.min())
        blocks = [b[: sizes.min()] for b in blocks]
        for i, (stream, block) in enumerate(zip(alone, blocks, strict=True)):
            want[i].append(stream.feed(block))
        for i, probs in enumerate(feed_streams(together, blocks)):
            got[i].append(probs)
    for w, g in zip(want, got, strict=True):
        np.testing.assert_allclose(np.concatenate(g), np.concatenate(w), atol=1e-5)

    backend = recognizer.backend
    windows = [[speech[i : i + 48000] for i in range(0, 96000, 24000)] for _ in range(2)]
    windows[1] = [0.3 * w for w in windows[1]]

    def jobs() -> list:
        return [WindowJob(ws, RunningAdaptation(backend.pipeline), np.ones(len(ws)))
                for ws in windows]  # fmt: skip

    separate = [score_jobs(backend, [job])[0] for job in jobs()]
    for joint, single in zip(score_jobs(backend, jobs()), separate, strict=True):
        np.testing.assert_allclose(joint, single, atol=1e-5)


def test_chunks_are_converted_as_arrays_are(recognizer, speech):
    """A stream's chunks go through :func:`~emofuse.inference.windows.as_mono` as arrays do:
    uint8 PCM (refused before) streams as its float equivalent, empty and one-sample stereo
    chunks are taken."""
    pcm = np.clip(np.round(speech * 128) + 128, 0, 255).astype(np.uint8)
    as_uint8 = _streamed(recognizer.stream(), pcm, [4000])
    as_float = _streamed(recognizer.stream(), (pcm / 128 - 1).astype(np.float32), [4000])
    assert [e.to_dict() for e in as_uint8] == [e.to_dict() for e in as_float]
    stream = recognizer.stream()
    assert stream.feed(np.zeros((0, 2), np.int16)) == [] and stream.feed(np.zeros((1, 2))) == []
    assert stream.seconds == 1 / RATE


@pytest.mark.parametrize("rate", [7999, 192_001, 0, 16000.0, True, "16000", None])
def test_stream_rates_outside_8_to_192_khz_are_refused(recognizer, rate):
    """The one range of the library, the CLI's --rate and the service's header."""
    with pytest.raises(ValueError, match=f"sample_rate must be an integer from 8000 to 192000 "
                                         f"Hz, got {rate!r}"):  # fmt: skip
        recognizer.stream(rate)


def test_stream_rates_at_the_ends_and_numpy_integers_are_taken(recognizer):
    assert [recognizer.stream(r).sample_rate for r in (8000, 192_000, np.int64(44100))] == [
        8000, 192_000, 44100]  # fmt: skip
