"""The REST service (emofuse.serve): every endpoint, every bad input, limits, key, queue."""

from __future__ import annotations

import argparse
import copy
import io
import re
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")

from fastapi.testclient import TestClient  # noqa: E402

from emofuse.inference import EmotionRecognizer, Prediction  # noqa: E402
from emofuse.inference.precision import PrecisionChoice
from emofuse.serve.app import create_app  # noqa: E402
from emofuse.signal.audio import AudioError, decode_audio, load_audio  # noqa: E402
from emofuse.testing import save_tiny_pipeline, tiny_pipeline  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CLIP = EXAMPLES / "emodb-03a01Wa-angry.flac"  # 1.878 s of speech, 16 kHz


def wav_bytes(wave: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, wave, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory):
    path = save_tiny_pipeline(tmp_path_factory.mktemp("serve") / "tiny.pt")
    return EmotionRecognizer.load(path, device="cpu")  # VAD on


@pytest.fixture(scope="module")
def client(recognizer):
    with TestClient(create_app(recognizer, model_name="tiny", max_predict_seconds=10)) as c:
        yield c


class SlowRecognizer:
    """A recogniser that takes ``delay`` seconds per prediction (or raises ``fail``)."""

    labels = ("angry", "happy")
    sample_rate = 16000
    backend = SimpleNamespace(
        name="fake", window_seconds=3.0, hop_seconds=1.5, metadata={}, normalised_per=None,
        precision_choice=PrecisionChoice("fp32", "fp32", "asked"),
    )  # fmt: skip
    vad = None
    source = None

    def __init__(self, delay: float = 0.0, fail: Exception | None = None) -> None:
        self.delay, self.fail = delay, fail

    def predict_waves(self, waves):
        time.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return [Prediction("angry", {"angry": 0.75, "happy": 0.25}, False, w.size / 16000)
                for w in waves]  # fmt: skip


# --- decode_audio -------------------------------------------------------------------------


def test_decode_audio_equals_load_audio_and_resamples():
    assert np.allclose(decode_audio(CLIP.read_bytes()), load_audio(CLIP))
    stereo = np.stack([np.full(44100, 0.1), np.full(44100, 0.3)], axis=1)
    wave = decode_audio(wav_bytes(stereo, 44100))
    assert wave.dtype == np.float32 and abs(wave.size - 16000) <= 1
    assert np.allclose(wave[1000:-1000], 0.2, atol=1e-3)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file (0 bytes)"),
        (b"hello, this is text\n" * 20, "not a readable audio file"),
        (wav_bytes(np.array([0.1, np.nan, 0.2], np.float32), subtype="FLOAT"), "non-finite"),
        (wav_bytes(np.zeros(32000, np.float32)), "longer than the limit: 2.0 s > 1 s"),
    ],
)
def test_decode_audio_errors(data, reason):
    with pytest.raises(AudioError, match=re.escape(reason)) as caught:
        decode_audio(data, name="clip.wav", max_seconds=1.0)
    assert str(caught.value).startswith("clip.wav: ")


# --- endpoints ------------------------------------------------------------------------------


def test_healthz_and_model(client, recognizer):
    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/v1/model").json()
    assert info["name"] == "tiny" and info["labels"] == list(recognizer.labels)
    assert info["sample_rate"] == 16000 and info["vad"] is True
    assert info["window_seconds"] == recognizer.backend.window_seconds
    assert info["max_upload_mb"] == 25.0 and info["max_predict_seconds"] == 10
    assert isinstance(info["version"], str)
    # a user's model file: its own metadata, no bundled card
    assert info["source"] == "file" and info["model_card"] is None and info["training"] is None
    assert info["backend"] == "torch" and info["metadata"]["features"] == ["mfcc", "logmel"]
    assert info["precision"]["requested"] == "auto" and info["precision"]["used"] == "fp32"
    assert info["adapts_to_recording"] is False


def test_model_description_names_a_file_by_its_name_and_a_bundled_one_by_its_card(recognizer):
    from emofuse.serve.model_info import bundled_card, model_description

    assert model_description(recognizer)["name"] == "tiny.pt"  # not the server's path
    fast = bundled_card("fast")
    if fast is None:
        pytest.skip("the bundled model card is not installed")
    assert "## fast" in fast and "## accurate" not in fast  # its own section only
    assert fast.startswith("# emofuse bundled models")  # with the opening both share
    bundled = copy.copy(recognizer)
    bundled.source = "fast"
    info = model_description(bundled)
    assert info["name"] == "fast" and info["source"] == "bundled"
    assert info["model_card"] == fast and info["training"]["task"] == "bundled7"
    assert "history" not in info["training"]


def test_model_description_of_an_onnx_export_is_its_sidecar(tmp_path):
    pytest.importorskip("onnxruntime")
    from emofuse.inference.onnx import export_onnx
    from emofuse.serve.model_info import model_description

    export_onnx(tiny_pipeline(), tmp_path / "m.onnx")
    info = model_description(EmotionRecognizer.load(tmp_path / "m.onnx", vad=False))
    assert info["name"] == "m.onnx" and info["backend"] == "onnx"
    assert info["metadata"]["labels"] == info["labels"] and info["model_card"] is None


def check_prediction(body: dict, labels) -> None:
    assert len(body["request_id"]) == 32
    assert body["speech"] is True and body["reason"] is None
    assert body["label"] in labels and set(body["probabilities"]) == set(labels)
    assert abs(sum(body["probabilities"].values()) - 1) < 1e-3
    assert body["confidence"] == body["probabilities"][body["label"]]


def test_predict_multipart_and_raw_body_agree(client, recognizer):
    data = CLIP.read_bytes()
    form = client.post("/v1/predict", files={"file": ("a.flac", data, "audio/flac")})
    raw = client.post("/v1/predict", content=data, headers={"Content-Type": "audio/flac"})
    assert form.status_code == raw.status_code == 200
    check_prediction(form.json(), recognizer.labels)
    assert form.json()["duration"] == 1.878
    expected = recognizer.predict(CLIP)
    for body in (form.json(), raw.json()):
        assert body["label"] == expected.label
        assert body["probabilities"] == {k: round(p, 4) for k, p in expected.probabilities.items()}


def test_predict_44k_stereo_wav_other_fields_ignored(client, recognizer):
    speech = load_audio(CLIP, 44100)
    data = wav_bytes(np.stack([speech, speech * 0.5], axis=1), 44100)
    response = client.post(
        "/v1/predict", data={"note": "x" * 100}, files={"file": ("s.wav", data, "audio/wav")}
    )
    assert response.status_code == 200, response.text
    check_prediction(response.json(), recognizer.labels)
    assert abs(response.json()["duration"] - 1.878) < 0.002


def test_predict_no_speech(client):
    response = client.post("/v1/predict", content=wav_bytes(np.zeros(16000, np.float32)))
    body = response.json()
    assert response.status_code == 200
    assert body["speech"] is False and body["label"] == "no speech"
    assert body["probabilities"] == {} and body["confidence"] == 0
    assert body["reason"].startswith("silent")


def test_timeline_speech_then_silence(client, recognizer):
    wave = np.concatenate([load_audio(CLIP), np.zeros(3 * 16000, np.float32)])
    response = client.post("/v1/timeline", files={"file": ("t.wav", wav_bytes(wave))})
    assert response.status_code == 200, response.text
    body = response.json()
    segments = body["segments"]
    assert body["duration"] == round(wave.size / 16000, 3)
    assert segments[0]["start"] == 0 and segments[-1]["end"] == body["duration"]
    assert all(a["end"] == b["start"] for a, b in zip(segments, segments[1:], strict=False))
    speech = [s for s in segments if s["speech"]]
    assert speech and all(s["label"] in recognizer.labels for s in speech)
    assert all(s["confidence"] == max(s["probabilities"].values()) for s in speech)
    assert segments[-1]["speech"] is False and segments[-1]["label"] == "no speech"
    assert segments[-1]["probabilities"] == {} and segments[-1]["reason"]
    # the same segments as the file-based timeline
    expected = list(recognizer.timeline(wave, recognizer.sample_rate))
    assert [s["label"] for s in segments] == [s.label for s in expected]


def test_timeline_window_and_hop(client):
    data = CLIP.read_bytes()
    small = client.post("/v1/timeline?window=0.5&hop=0.25", content=data).json()["segments"]
    assert len(small) > 3
    bad = client.post("/v1/timeline?window=1&hop=2", content=data)
    assert bad.status_code == 422 and "hop" in bad.json()["detail"]
    bad = client.post("/v1/timeline?window=abc", content=data)
    assert bad.status_code == 422 and "window" in bad.json()["detail"]


# --- bad input ------------------------------------------------------------------------------


def test_too_large_by_content_length_and_by_stream(recognizer):
    app = create_app(recognizer, max_upload_mb=0.01)  # 10,485 bytes
    big = wav_bytes(np.zeros(16000, np.float32))  # 32 kB
    with TestClient(app) as client:
        response = client.post("/v1/predict", content=big)
        assert response.status_code == 413 and "0.01 MB" in response.json()["detail"]

        def chunks():  # no Content-Length: chunked transfer
            for start in range(0, len(big), 4096):
                yield big[start : start + 4096]

        for path in ("/v1/predict", "/v1/timeline"):
            response = client.post(path, content=chunks())
            assert response.status_code == 413, response.text
        boundary = "xyz"
        form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"a.wav\"\r\n\r\n").encode() + big  # fmt: skip
        response = client.post(
            "/v1/predict",
            content=(form[i : i + 4096] for i in range(0, len(form), 4096)),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert response.status_code == 413
        assert response.json()["request_id"]


def test_streamed_body_under_the_limit_is_read(client):
    data = CLIP.read_bytes()
    chunks = (data[i : i + 1000] for i in range(0, len(data), 1000))
    response = client.post("/v1/predict", content=chunks)
    assert response.status_code == 200 and response.json()["duration"] == 1.878


def test_not_audio_is_415_without_server_paths(client):
    response = client.post("/v1/predict", files={"file": ("a.txt", b"just text\n" * 50)})
    assert response.status_code == 415
    detail = response.json()["detail"]
    assert detail.startswith("not a readable audio file") and "/" not in detail
    assert response.json()["request_id"] == response.headers["X-Request-ID"]


@pytest.mark.parametrize("path", ["/v1/predict", "/v1/timeline"])
def test_empty_body_and_empty_file_are_422(client, path):
    assert client.post(path, content=b"").status_code == 422
    response = client.post(path, files={"file": ("a.wav", b"")})
    assert response.status_code == 422 and "empty" in response.json()["detail"]


def test_nan_wav_is_422(client):
    nan = np.zeros(16000, np.float32)
    nan[8000] = np.nan
    response = client.post("/v1/predict", content=wav_bytes(nan, subtype="FLOAT"))
    assert response.status_code == 422 and "non-finite" in response.json()["detail"]


def test_too_long_for_predict_is_422_pointing_to_timeline(client):
    data = wav_bytes(np.zeros(11 * 16000, np.float32))
    response = client.post("/v1/predict", content=data)
    assert response.status_code == 422
    assert "/v1/timeline" in response.json()["detail"] and "11.0 s" in response.json()["detail"]
    assert client.post("/v1/timeline", content=data).status_code == 200


def test_form_without_file_field_and_malformed_form(client):
    response = client.post("/v1/predict", files={"audio": ("a.flac", CLIP.read_bytes())})
    assert response.status_code == 422 and "'file'" in response.json()["detail"]
    response = client.post(
        "/v1/predict", content=b"garbage", headers={"Content-Type": "multipart/form-data"}
    )
    assert response.status_code == 400 and "boundary" in response.json()["detail"]
    response = client.post(
        "/v1/predict",
        content=b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc',
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert response.status_code == 400


def test_nothing_written_to_disk(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an upload went to a temporary file")

    for name in ("SpooledTemporaryFile", "NamedTemporaryFile", "TemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    response = client.post("/v1/predict", files={"file": ("a.flac", CLIP.read_bytes())})
    assert response.status_code == 200


def test_unexpected_error_is_500_with_request_id():
    app = create_app(SlowRecognizer(fail=RuntimeError("boom")))
    with TestClient(app) as client:
        response = client.post("/v1/predict", content=CLIP.read_bytes())
    assert response.status_code == 500
    assert response.json() == {
        "detail": "internal server error", "request_id": response.headers["X-Request-ID"]
    }  # fmt: skip


# --- key, ids, queue, pages -----------------------------------------------------------------


def test_api_key(recognizer):
    with TestClient(create_app(recognizer, api_key="s3cret")) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/v1/model").status_code == 401
        assert client.get("/openapi.json").status_code == 401
        wrong = client.post("/v1/predict", content=b"x", headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401 and wrong.json()["request_id"]
        assert client.get("/v1/model", headers={"X-API-Key": "s3cret"}).status_code == 200
        bearer = {"Authorization": "Bearer s3cret"}
        assert client.get("/v1/model", headers=bearer).status_code == 200
        assert client.get("/").status_code in (200, 404)  # the page itself is open


def test_request_id_generated_and_echoed(client):
    response = client.get("/healthz")
    assert len(response.headers["X-Request-ID"]) == 32
    echoed = client.get("/v1/model", headers={"X-Request-ID": "my-id.42"})
    assert echoed.headers["X-Request-ID"] == "my-id.42"
    body = client.post("/v1/predict", content=b"", headers={"X-Request-ID": "abc"}).json()
    assert body["request_id"] == "abc"
    insane = client.get("/healthz", headers={"X-Request-ID": "a b<script>" + "x" * 100})
    assert len(insane.headers["X-Request-ID"]) == 32


def test_queue_full_is_503_and_healthz_stays_responsive():
    app = create_app(SlowRecognizer(delay=1.0), workers=1, max_queue=1)
    data = wav_bytes(np.full(1600, 0.1, np.float32))
    with TestClient(app) as client:
        results = {}
        slow = threading.Thread(
            target=lambda: results.update(slow=client.post("/v1/predict", content=data))
        )
        slow.start()
        time.sleep(0.3)
        started = time.perf_counter()
        assert client.get("/healthz").status_code == 200
        assert time.perf_counter() - started < 0.5
        busy = client.post("/v1/predict", content=data)
        slow.join()
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
    assert busy.json()["request_id"]
    assert results["slow"].status_code == 200 and results["slow"].json()["confidence"] == 0.75


def test_cors_off_by_default_and_on_when_asked(recognizer, client):
    origin = {"Origin": "http://example.org"}
    assert "access-control-allow-origin" not in client.get("/v1/model", headers=origin).headers
    app = create_app(recognizer, cors_origins=["http://example.org"])
    with TestClient(app) as cors:
        allowed = cors.get("/v1/model", headers=origin).headers
        assert allowed["access-control-allow-origin"] == "http://example.org"


def test_openapi_pages_and_static(client):
    schema = client.get("/openapi.json").json()
    for path in ("/healthz", "/v1/model", "/v1/predict", "/v1/timeline"):
        assert path in schema["paths"]
    assert client.get("/docs").status_code == 404  # no CDN-backed Swagger UI
    assert client.get("/nowhere").json()["detail"] == "Not Found"
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert client.get("/static/index.html").status_code == 200


# --- CLI ------------------------------------------------------------------------------------


def serve_parser() -> argparse.ArgumentParser:
    from emofuse.cli import serve

    parser = argparse.ArgumentParser(prog="emofuse")
    serve.add_commands(parser.add_subparsers(dest="command"))
    return parser


def test_cli_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        serve_parser().parse_args(["serve", "--help"])
    text = capsys.readouterr().out
    for option in ("--host", "--port", "--model", "--max-upload-mb", "--max-predict-seconds",
                   "--threads", "--device", "--precision", "--api-key", "--cors-origin",
                   "--no-vad"):  # fmt: skip
        assert option in text
    args = serve_parser().parse_args(["serve", "--cors-origin", "a", "--cors-origin", "b"])
    assert args.cors_origin == ["a", "b"] and args.port == 8000 and args.threads == 1


def test_cli_without_fastapi_names_the_extra(monkeypatch):
    import sys

    from emofuse.cli import serve

    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi -> ImportError
    args = serve_parser().parse_args(["serve"])
    with pytest.raises(ImportError, match=r"pip install 'emofuse\[serve\]'"):
        serve.cmd_serve(args)


def test_batcher_classifies_waiting_clips_together_in_order():
    from emofuse.serve.batching import Batcher

    sizes = []

    def predict(waves):
        sizes.append(len(waves))
        time.sleep(0.05)
        return [float(w[0]) for w in waves]

    batcher = Batcher(predict, workers=1, max_batch=4, wait_seconds=0.01)
    futures = [batcher.submit(np.full(10, i, np.float32)) for i in range(9)]
    assert [f.result(timeout=10) for f in futures] == [float(i) for i in range(9)]
    batcher.close()
    assert sum(sizes) == 9 and max(sizes) == 4 and len(sizes) < 9


def test_batcher_hands_an_error_to_every_waiting_request():
    from emofuse.serve.batching import Batcher

    def predict(waves):
        raise RuntimeError("model failed")

    batcher = Batcher(predict, workers=1, max_batch=8, wait_seconds=0.05)
    futures = [batcher.submit(np.zeros(4, np.float32)) for _ in range(3)]
    for future in futures:
        with pytest.raises(RuntimeError, match="model failed"):
            future.result(timeout=10)
    batcher.close()


def test_predict_waves_equals_predict_one_by_one(recognizer):
    waves = [load_audio(CLIP), load_audio(CLIP)[: 16000 // 2], np.zeros(16000, np.float32)]
    together = recognizer.predict_waves(waves)
    for wave, joint in zip(waves, together, strict=True):
        alone = recognizer.predict(wave, sample_rate=16000)
        assert joint.label == alone.label and joint.reason == alone.reason
        assert joint.probabilities == pytest.approx(alone.probabilities, abs=1e-5)
