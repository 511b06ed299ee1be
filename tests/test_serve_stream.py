"""``WS /v1/stream``: live audio in, the events of the library's stream out; the key, the limits
and every bad input closed with a clear code and reason, other streams unaffected."""

from __future__ import annotations

import json

import numpy as np
import pytest
from real_audio import speech_files

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")

from fastapi.testclient import TestClient  # noqa: E402

from emofuse.inference import EmotionRecognizer  # noqa: E402
from emofuse.serve.app import create_app  # noqa: E402
from emofuse.serve.live import StreamLimits  # noqa: E402
from emofuse.signal.audio import load_audio  # noqa: E402
from emofuse.testing import save_tiny_pipeline  # noqa: E402

RATE = 16000
HEADER = json.dumps({"sample_rate": RATE, "format": "pcm_s16le"})
END = json.dumps({"event": "end"})


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory):
    path = save_tiny_pipeline(tmp_path_factory.mktemp("serve") / "tiny.pt")
    return EmotionRecognizer.load(path, device="cpu")  # VAD on


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    clips = [load_audio(f, RATE) for f in speech_files("emodb", 3)]
    return np.concatenate([clips[0], np.zeros(2 * RATE, np.float32), clips[1], clips[2]])


def _app(recognizer, **limits):
    return TestClient(create_app(recognizer, stream_limits=StreamLimits(**limits)))


def _pcm(wave: np.ndarray) -> bytes:
    return (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()


def _drain(ws) -> tuple[list[dict], int, str]:
    """Every message until the server closes: (events, close code, reason)."""
    events = []
    while True:
        message = ws.receive()
        if message["type"] == "websocket.close":
            return events, message["code"], message.get("reason", "")
        events.append(json.loads(message["text"]))


def _stream(client, chunks: list[bytes], header: str = HEADER, path: str = "/v1/stream",
            end: bool = True, **kwargs) -> tuple[list[dict], int, str]:  # fmt: skip
    with client.websocket_connect(path, **kwargs) as ws:
        ws.send_text(header)
        for chunk in chunks:
            ws.send_bytes(chunk)
        if end:
            ws.send_text(END)
        return _drain(ws)


def test_stream_events_equal_the_library(recognizer, speech):
    pcm = (np.clip(speech, -1, 1) * 32767).astype(np.int16)
    library = recognizer.stream()
    want = [e.to_dict() for e in library.feed(pcm) + library.close() if e.type == "segment"]
    data = pcm.astype("<i2").tobytes()
    with _app(recognizer) as client:
        events, code, _ = _stream(client, [data[i : i + 3200] for i in range(0, len(data), 3200)])
    assert code == 1000
    segments = [e for e in events if e["type"] == "segment"]
    assert [(s["start"], s["end"], s["label"]) for s in segments] == [
        (w["start"], w["end"], w["label"]) for w in want]  # fmt: skip
    for got, expected in zip(segments, want, strict=True):
        for label, p in expected["probabilities"].items():
            assert got["probabilities"][label] == pytest.approx(p, abs=1e-3)
    types = [e["type"] for e in events]
    assert {"speech_start", "partial", "speech_end"} <= set(types)
    assert all(e["heard"] >= e["end"] - 1e-3 for e in events)


def test_f32le_at_another_rate(recognizer, speech):
    import soxr

    low = soxr.resample(speech, RATE, 8000).astype("<f4")
    header = json.dumps({"sample_rate": 8000, "format": "f32le"})
    with _app(recognizer) as client:
        events, code, _ = _stream(client, [low[i : i + 800].tobytes()
                                           for i in range(0, low.size, 800)], header)  # fmt: skip
    assert code == 1000
    assert events[-1]["type"] in ("speech_end", "segment")
    assert max(e["end"] for e in events) == pytest.approx(speech.size / RATE, abs=0.01)


def test_key_in_header_or_query(recognizer, speech):
    with TestClient(create_app(recognizer, api_key="sesame")) as client:
        events, code, reason = _stream(client, [_pcm(speech)])
        assert (events, code) == ([], 1008) and "API key" in reason
        events, code, _ = _stream(client, [_pcm(speech)], path="/v1/stream?key=sesame")
        assert code == 1000 and events
        _, code, _ = _stream(client, [_pcm(speech)], headers={"X-API-Key": "sesame"})
        assert code == 1000


@pytest.mark.parametrize(
    ("header", "chunk", "code", "reason"),
    [
        (None, b"\x00\x00", 1003, "JSON text header"),
        ("hello", b"", 1003, "not JSON"),
        ('{"sample_rate": 16000, "format": "mp3"}', b"", 1003, "unknown format 'mp3'"),
        ('{"sample_rate": "fast"}', b"", 1007, "sample_rate must be an integer"),
        ('{"sample_rate": 7999}', b"", 1007, "from 8000 to 192000 Hz, got 7999"),
        ('{"sample_rate": 192001}', b"", 1007, "from 8000 to 192000 Hz, got 192001"),
        ('{"sample_rate": 16000.0}', b"", 1007, "got 16000.0"),
        ('{"sample_rate": 16000}', b"\x00\x00\x01", 1007, "not a whole number"),
        ('{"sample_rate": 16000, "format": "f32le"}', np.array([np.nan], "<f4").tobytes(), 1007,
         "non-finite"),
        (HEADER, b"\x00" * (2 * 16000 * 11), 1009, "over 10 s"),
    ],
)  # fmt: skip
def test_bad_input_closes_with_a_reason(recognizer, header, chunk, code, reason):
    with _app(recognizer) as client, client.websocket_connect("/v1/stream") as ws:
        if header is None:
            ws.send_bytes(chunk)
        else:
            ws.send_text(header)
            if chunk:
                ws.send_bytes(chunk)
        ws.send_text(END)
        _, got, said = _drain(ws)
    assert got == code and reason in said


def test_text_other_than_end_is_refused(recognizer):
    with _app(recognizer) as client, client.websocket_connect("/v1/stream") as ws:
        ws.send_text(HEADER)
        ws.send_text('{"event": "pause"}')
        _, code, reason = _drain(ws)
    assert code == 1003 and '{"event": "end"}' in reason


def test_limits_full_idle_and_too_long(recognizer, speech):
    with _app(recognizer, max_streams=1, idle_seconds=0.5, max_seconds=2.0) as client:
        with client.websocket_connect("/v1/stream") as first:
            first.send_text(HEADER)
            with client.websocket_connect("/v1/stream") as second:
                _, code, reason = _drain(second)
            assert code == 1013 and "server busy" in reason
            _, code, reason = _drain(first)  # then it sends nothing
            assert code == 1008 and "idle" in reason
        events, code, reason = _stream(
            client, [_pcm(speech[i : i + RATE]) for i in range(0, 4 * RATE, RATE)], end=False
        )
        assert code == 1008 and "longer than the limit of 2 s" in reason
        assert events and events[-1]["type"] in ("segment", "speech_end")


def test_a_vanished_client_frees_its_place(recognizer, speech):
    """A client that goes away mid-stream is cleaned up: with room for one stream, the next
    one is served; a bad stream beside a good one leaves the good one whole."""
    with _app(recognizer, max_streams=2) as client:
        with client.websocket_connect("/v1/stream") as ws:
            ws.send_text(HEADER)
            ws.send_bytes(_pcm(speech[:RATE]))
        for _ in range(3):
            with client.websocket_connect("/v1/stream") as good:
                good.send_text(HEADER)
                good.send_bytes(_pcm(speech[: 2 * RATE]))
                with client.websocket_connect("/v1/stream") as bad:
                    bad.send_text(HEADER)
                    bad.send_bytes(b"\x00")
                    _, code, _ = _drain(bad)
                    assert code == 1007
                good.send_bytes(_pcm(speech[2 * RATE :]))
                good.send_text(END)
                events, code, _ = _drain(good)
            assert code == 1000 and any(e["type"] == "segment" for e in events)
        assert client.get("/v1/model").json()["max_streams"] == 2


def test_minutes_of_silence_are_one_no_speech_segment(recognizer):
    """Silence is not idleness: three minutes of it keep the stream open and end as one
    "no speech" segment."""
    second = _pcm(np.zeros(RATE, np.float32))
    with _app(recognizer, idle_seconds=5.0) as client:
        events, code, _ = _stream(client, [second] * 180)
    assert code == 1000
    assert [(e["type"], e["start"], e["end"], e["label"]) for e in events] == [
        ("segment", 0.0, 180.0, "no speech")
    ]
