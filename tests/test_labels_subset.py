"""Label subsets (``labels=``, ``--labels``, ``?labels=``, the live header's ``labels``): every
answer is the model's probabilities restricted to the subset and renormalised, the label the
most probable of the subset, in the model's order; a bad name is a clear error everywhere."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from cli_output import error_lines
from real_audio import EXAMPLES

from emofuse.cli import main
from emofuse.inference import EmotionRecognizer, Prediction
from emofuse.inference.results import StreamEvent, label_subset, restrict, restricted
from emofuse.signal.audio import load_audio
from emofuse.testing import TINY_LABELS, save_tiny_pipeline, synthetic_voice

RATE = 16000
MODEL_LIST = ", ".join(TINY_LABELS)  # how errors list the model's labels


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="module")
def recognizer(model) -> EmotionRecognizer:
    return EmotionRecognizer.load(model, device="cpu", vad=False)  # synthetic voices


@pytest.fixture(scope="module")
def voice() -> np.ndarray:
    return synthetic_voice(7.0, seed=2)


def _least_likely(probabilities: dict[str, float], count: int = 2) -> tuple[str, ...]:
    """The ``count`` least probable labels, in the model's order: a subset without the
    unrestricted answer, so the restricted label must differ from it."""
    lowest = sorted(probabilities, key=probabilities.get)[:count]
    return tuple(k for k in probabilities if k in lowest)


def _assert_restriction_of(got: dict, full: dict, subset: tuple[str, ...], atol=1e-6) -> None:
    """``got`` is ``full`` over ``subset`` divided by its sum, keys in the model's order."""
    assert tuple(got) == subset
    total = sum(full[k] for k in subset)
    np.testing.assert_allclose([got[k] for k in subset], [full[k] / total for k in subset],
                               atol=atol)  # fmt: skip
    assert sum(got.values()) == pytest.approx(1.0, abs=max(atol, 1e-6) * len(subset))


# --- the pure functions ---------------------------------------------------------------------


def test_restrict_renormalises_in_the_model_order():
    full = {"neutral": 0.1, "happy": 0.2, "sad": 0.3, "angry": 0.4}
    got = restrict(full, ("sad", "neutral"))  # any order asked: the model's order answered
    assert list(got) == ["neutral", "sad"]
    assert got == pytest.approx({"neutral": 0.25, "sad": 0.75})
    assert restrict({"a": 0.0, "b": 0.0, "c": 1.0}, ("a", "b")) == {"a": 0.5, "b": 0.5}


def test_restricted_takes_the_argmax_of_the_subset_and_leaves_no_speech_alone():
    full = Prediction("angry", {"neutral": 0.1, "happy": 0.3, "sad": 0.2, "angry": 0.4}, False,
                      2.0, "a.wav")  # fmt: skip
    two = restricted(full, ("happy", "sad"))
    assert (two.label, two.duration, two.source) == ("happy", 2.0, "a.wav")
    assert two.probabilities == pytest.approx({"happy": 0.6, "sad": 0.4})
    assert two.confidence == pytest.approx(0.6)
    assert restricted(full, None) is full
    silent = Prediction("no speech", {}, True, 1.0, reason="silent")
    assert restricted(silent, ("happy",)) is silent
    start = StreamEvent("speech_start", 1.0, 1.0)
    assert restricted(start, ("happy",)) is start
    partial = restricted(StreamEvent("partial", 0.0, 2.0, "angry", full.probabilities), ("sad",))
    assert (partial.label, partial.probabilities, partial.to_dict()["confidence"]) == (
        "sad", {"sad": 1.0}, 1.0)  # fmt: skip


def test_label_subset_checks_names_and_keeps_the_model_order():
    assert label_subset(TINY_LABELS, None) is None
    assert label_subset(TINY_LABELS, " angry, neutral ") == ("neutral", "angry")
    assert label_subset(TINY_LABELS, ["sad", "happy"]) == ("happy", "sad")
    with pytest.raises(ValueError, match="unknown label 'bored', 'calm'") as error:
        label_subset(TINY_LABELS, "happy,bored,calm")
    assert str(error.value).endswith(f"the model's labels are {MODEL_LIST}")
    with pytest.raises(ValueError, match="'sad' named more than once"):
        label_subset(TINY_LABELS, "sad,happy,sad")
    for empty in ("", "happy,,sad", []):
        with pytest.raises(ValueError, match=f"labels must name .* are {MODEL_LIST}"):
            label_subset(TINY_LABELS, empty)


# --- the library ----------------------------------------------------------------------------


def test_predict_with_labels_is_the_restricted_prediction(recognizer, voice):
    full = recognizer.predict(voice, sample_rate=RATE)
    subset = _least_likely(full.probabilities)
    asked = ",".join(reversed(subset))  # asked in another order than the model's
    got = recognizer.predict(voice, sample_rate=RATE, labels=asked)
    _assert_restriction_of(got.probabilities, full.probabilities, subset)
    assert got.label == max(subset, key=full.probabilities.get) != full.label
    assert got.confidence == max(got.probabilities.values())
    assert (got.silent, got.duration) == (False, full.duration)


def test_predict_many_and_iter_predictions_with_labels(recognizer, tmp_path):
    paths = [tmp_path / "a.wav", tmp_path / "quiet.wav", tmp_path / "b.wav"]
    for path, wave in zip(paths, [synthetic_voice(2.0), np.zeros(RATE, np.float32),
                                  synthetic_voice(5.0, seed=1)], strict=True):  # fmt: skip
        sf.write(path, wave, RATE)
    subset = ("neutral", "sad")
    full = recognizer.predict_many(paths)
    got = recognizer.predict_many(paths, labels=["sad", "neutral"], batch_size=1)
    assert got[1] == full[1] and got[1].label == "no speech"  # no speech stays as it was
    for g, f in zip([got[0], got[2]], [full[0], full[2]], strict=True):
        _assert_restriction_of(g.probabilities, f.probabilities, subset, atol=1e-5)
        assert g.label == max(subset, key=f.probabilities.get)
    streamed = dict(recognizer.iter_predictions(paths, labels="neutral,sad", workers=2))
    assert sorted(streamed) == [0, 1, 2] and streamed[1] == full[1]
    for i in (0, 2):
        assert streamed[i].probabilities == pytest.approx(got[i].probabilities, abs=1e-5)


def test_timeline_and_stream_with_labels_agree(recognizer, voice):
    subset = ("happy", "angry")
    full = list(recognizer.timeline(voice, RATE, window_seconds=2.0, hop_seconds=1.0))
    got = list(recognizer.timeline(voice, RATE, window_seconds=2.0, hop_seconds=1.0,
                                   labels="angry,happy"))  # fmt: skip
    assert len(got) == len(full) > 2
    for g, f in zip(got, full, strict=True):
        assert (g.start, g.end, g.silent) == (f.start, f.end, f.silent)
        _assert_restriction_of(g.probabilities, f.probabilities, subset)
        assert g.label == max(subset, key=f.probabilities.get)

    chunks = np.array_split((voice * 32767).astype(np.int16), 30)
    plain, chosen = recognizer.stream(RATE), recognizer.stream(RATE, labels=list(subset))
    events = [e for c in chunks for e in plain.feed(c)] + plain.close()
    answered = [e for c in chunks for e in chosen.feed(c)] + chosen.close()
    assert [e.type for e in answered] == [e.type for e in events]
    assert {"partial", "segment"} <= {e.type for e in answered}
    for g, f in zip(answered, events, strict=True):
        if f.probabilities:
            _assert_restriction_of(g.probabilities, f.probabilities, subset)
            assert g.label == max(subset, key=f.probabilities.get)
        else:
            assert g == f


def test_bad_labels_fail_before_any_work(recognizer, tmp_path):
    missing = tmp_path / "missing.wav"  # never read: the labels are checked first
    for call in (lambda: recognizer.predict(missing, labels="happy,bored"),
                 lambda: recognizer.timeline(missing, labels="happy,bored"),
                 lambda: recognizer.stream(RATE, labels=["happy", "bored"]),
                 lambda: recognizer.predict_many([missing], labels="happy,bored")):  # fmt: skip
        with pytest.raises(ValueError, match=f"'bored': the model's labels are {MODEL_LIST}"):
            call()


def test_onnx_backend_answers_the_same_subset(model, recognizer, voice, tmp_path):
    pytest.importorskip("onnxruntime")
    from emofuse.inference.onnx import export_onnx
    from emofuse.pipeline import load_model

    path = export_onnx(load_model(model), tmp_path / "tiny.onnx")
    onnx = EmotionRecognizer.load(path, vad=False)
    got = onnx.predict(voice, sample_rate=RATE, labels="neutral,happy")
    want = recognizer.predict(voice, sample_rate=RATE, labels="neutral,happy")
    assert tuple(got.probabilities) == ("neutral", "happy") and got.label == want.label
    assert got.probabilities == pytest.approx(want.probabilities, abs=1e-4)


# --- the command line -----------------------------------------------------------------------


def _predict(capsys, *args: str) -> tuple[int, str, list[str]]:
    status = main(["predict", *args, "--no-vad"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured.out, error_lines(captured.err)


def test_cli_labels_in_files_and_timeline(capsys, model, tmp_path):
    clip = tmp_path / "a.wav"
    sf.write(clip, synthetic_voice(3.0, seed=5), RATE)
    status, out, _ = _predict(capsys, str(clip), "--model", str(model), "--format", "json")
    full = json.loads(out)[0]["probabilities"]
    subset = _least_likely(full)
    status, out, err = _predict(capsys, str(clip), "--model", str(model), "--format", "json",
                                "--labels", ",".join(subset))  # fmt: skip
    (record,) = json.loads(out)
    assert status == 0 and err == []
    _assert_restriction_of(record["probabilities"], full, subset, atol=1e-3)  # rounded
    assert record["label"] == max(subset, key=full.get) and record["confidence"] == max(
        record["probabilities"].values())  # fmt: skip

    status, out, _ = _predict(capsys, str(clip), "--model", str(model), "--format", "csv",
                              "--timeline", "--labels", "sad,angry")  # fmt: skip
    header, *rows = out.strip().splitlines()
    assert status == 0 and rows
    assert header.split(",")[-3:] == ["reason", "sad", "angry"]  # only the subset's columns
    for row in rows:
        cells = row.split(",")
        assert cells[3] in ("sad", "angry")
        assert float(cells[-2]) + float(cells[-1]) == pytest.approx(1.0, abs=2e-4)


def test_cli_stream_with_labels(capsys, model, monkeypatch):
    pcm = (synthetic_voice(4.0, seed=6) * 32767).astype("<i2").tobytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(pcm)))
    status = main(["live", "--no-vad", "--model", str(model), "--labels", "neutral,sad"])
    captured = capsys.readouterr()
    out, err = captured.out, error_lines(captured.err)
    events = [json.loads(line) for line in out.splitlines()]
    assert status == 0 and err == []
    answered = [e for e in events if e["type"] in ("partial", "segment")]
    assert answered and {e["type"] for e in answered} == {"partial", "segment"}
    for event in answered:
        assert list(event["probabilities"]) == ["neutral", "sad"]
        assert sum(event["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
        assert event["label"] == max(event["probabilities"], key=event["probabilities"].get)


@pytest.mark.parametrize("mode", [[], ["--timeline"], ["live"]])
def test_cli_bad_label_is_one_error_line(capsys, model, tmp_path, monkeypatch, mode):
    clip = tmp_path / "a.wav"
    sf.write(clip, synthetic_voice(1.0), RATE)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    command = ["live"] if mode == ["live"] else ["predict", str(clip), *mode]
    status = main([*command, "--no-vad", "--model", str(model), "--labels", "happy,bored"])
    captured = capsys.readouterr()
    out, err = captured.out, error_lines(captured.err)
    assert status == 1 and out == ""
    assert err == [f"emofuse: error: unknown label 'bored': the model's labels are {MODEL_LIST}"]


# --- the service ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(model):
    pytest.importorskip("fastapi")
    pytest.importorskip("python_multipart")
    from fastapi.testclient import TestClient

    from emofuse.serve.app import create_app

    with TestClient(create_app(EmotionRecognizer.load(model, device="cpu"))) as c:  # VAD on
        yield c


def test_service_labels_query(client):
    data = EXAMPLES[0].read_bytes()
    full = client.post("/v1/predict", content=data).json()
    subset = _least_likely(full["probabilities"])
    got = client.post(f"/v1/predict?labels={','.join(subset)}", content=data).json()
    _assert_restriction_of(got["probabilities"], full["probabilities"], subset, atol=2e-4)
    assert got["label"] == max(subset, key=full["probabilities"].get) != full["label"]
    assert got["confidence"] == max(got["probabilities"].values()) and got["speech"]

    timeline = client.post("/v1/timeline?labels=neutral,angry", content=data).json()["segments"]
    spoken = [s for s in timeline if s["speech"]]
    assert spoken and all(list(s["probabilities"]) == ["neutral", "angry"] for s in spoken)
    assert all(s["label"] in ("neutral", "angry") for s in spoken)


@pytest.mark.parametrize("path", ["/v1/predict", "/v1/timeline"])
@pytest.mark.parametrize(
    ("labels", "said"),
    [
        ("happy,bored", "unknown label 'bored'"),
        ("", "labels must name"),
        ("sad,sad", "'sad' named more than once"),
    ],
)
def test_service_bad_labels_are_422(client, path, labels, said):
    response = client.post(f"{path}?labels={labels}", content=EXAMPLES[0].read_bytes())
    body = response.json()
    assert response.status_code == 422 and said in body["detail"] and body["request_id"]
    if "unknown" in said:
        assert body["detail"].endswith(f"the model's labels are {MODEL_LIST}")


def _live(client, header: dict, pcm: bytes) -> tuple[list[dict], int, str]:
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_text(json.dumps(header))
        for i in range(0, len(pcm), 6400):
            ws.send_bytes(pcm[i : i + 6400])
        ws.send_text(json.dumps({"event": "end"}))
        events = []
        while (message := ws.receive())["type"] != "websocket.close":
            events.append(json.loads(message["text"]))
        return events, message["code"], message.get("reason", "")


def test_live_header_labels(client):
    pcm = (load_audio(EXAMPLES[0], RATE) * 32767).astype("<i2").tobytes()
    header = {"sample_rate": RATE, "format": "pcm_s16le", "labels": ["sad", "happy"]}
    events, code, _ = _live(client, header, pcm)
    answered = [e for e in events if e["type"] in ("partial", "segment") and e["probabilities"]]
    assert code == 1000 and answered
    for event in answered:
        assert list(event["probabilities"]) == ["happy", "sad"]
        assert sum(event["probabilities"].values()) == pytest.approx(1.0, abs=2e-4)
        assert event["label"] == max(event["probabilities"], key=event["probabilities"].get)


@pytest.mark.parametrize(
    ("labels", "said"),
    [("happy,bored", "unknown label 'bored'"), (7, "labels must be a list of names")],
)
def test_live_bad_header_labels_close_with_1003(client, labels, said):
    header = {"sample_rate": RATE, "format": "pcm_s16le", "labels": labels}
    events, code, reason = _live(client, header, b"\x00\x00" * RATE)
    assert (events, code) == ([], 1003) and said in reason
