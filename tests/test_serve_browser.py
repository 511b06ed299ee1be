"""The web page of ``emofuse serve`` in a real browser: headless Chromium (Debian's
/usr/bin/chromium, never a downloaded one) driven by Playwright, against the real server.

Skips when Chromium or Playwright is missing. Set ``EMOFUSE_SCREENSHOT_DIR`` to keep the
screenshots.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "emodb-03a01Wa-angry.flac"
EXAMPLES = ("emodb-03a01Wa-angry.flac", "emodb-03a04Ta-sad.flac")  # 16 kHz mono
LIVE_EXAMPLES = EXAMPLES + ("emodb-08a01Na-neutral.flac", "emodb-16a07Fa-happy.flac")
LIVE_SPEECH_SECONDS = 12.6  # the live microphone's loop: 0.5 s, then each example and 1 s

if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed (extra 'serve')")
pytest.importorskip("fastapi", reason="fastapi is not installed (extra 'serve')")

TIMEOUT_MS = 20_000
# Playwright does not expose multipart bodies built from blobs: note each upload in the page
RECORD_UPLOADS = """
window.__uploads = [];
const realFetch = window.fetch;
window.fetch = async (url, init) => {
  const file = init && init.body instanceof FormData ? init.body.get("file") : null;
  if (file) {
    const head = new Uint8Array(await file.slice(0, 12).arrayBuffer());
    window.__uploads.push({url: String(url), name: file.name, type: file.type, size: file.size,
                           head: String.fromCharCode(...head)});
  }
  return realFetch(url, init);
};
"""


@pytest.fixture
def serve(tmp_path):
    """``serve(**create_app_kwargs)``: the real app over the tiny model on a free 127.0.0.1
    port, run by uvicorn in a thread; returns its base URL."""
    from emofuse.inference.recognizer import EmotionRecognizer
    from emofuse.serve.app import create_app
    from emofuse.testing import save_tiny_pipeline

    recognizer = EmotionRecognizer.load(save_tiny_pipeline(tmp_path / "tiny.pt"))
    running = []

    def start(**kwargs) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(create_app(recognizer, **kwargs), log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread, sock))
        deadline = time.monotonic() + 15
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield start
    for server, thread, sock in running:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextlib.contextmanager
def _browser_page(*args: str):
    """A new page of headless Chromium launched with the extra ``args``; ``page.js_errors``
    collects its uncaught errors and console errors."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",  # needed as root (containers, CI)
                "--use-fake-ui-for-media-stream",  # allow the microphone without asking
                "--use-fake-device-for-media-stream",  # a synthetic microphone (beeps)
                *args,
            ],
        )
        try:
            context = browser.new_context(viewport={"width": 1000, "height": 1100})
            context.add_init_script(RECORD_UPLOADS)
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            messages: list[str] = []
            page.on("pageerror", lambda error: messages.append(f"page error: {error}"))
            page.on("console", lambda m: m.type == "error" and messages.append(m.text))
            page.js_errors = messages  # type: ignore[attr-defined]
            yield page
        finally:
            browser.close()


@pytest.fixture
def page():
    with _browser_page() as page:
        yield page


@pytest.fixture
def live_page(tmp_path):
    """A page whose microphone plays real speech: the bundled examples with pauses between
    them (LIVE_SPEECH_SECONDS, 16 kHz 16-bit WAV), looped by Chromium."""
    import soundfile as sf

    rate = 16000
    pause = np.zeros(rate, np.float32)
    parts = [np.zeros(rate // 2, np.float32)]
    for name in LIVE_EXAMPLES:
        wave, clip_rate = sf.read(EXAMPLE.with_name(name), dtype="float32")
        assert clip_rate == rate and wave.ndim == 1
        parts += [wave, pause]
    speech = tmp_path / "microphone.wav"
    sf.write(speech, np.concatenate(parts), rate, subtype="PCM_16")
    assert sf.info(speech).duration == pytest.approx(LIVE_SPEECH_SECONDS, abs=1)
    with _browser_page(f"--use-file-for-fake-audio-capture={speech}") as page:
        yield page


def _screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("EMOFUSE_SCREENSHOT_DIR"):
        folder = Path(os.environ["EMOFUSE_SCREENSHOT_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder / name)
    return path


def _finish(page) -> str:
    """Wait until the page has finished analysing; its state, "done" or "error"."""
    page.wait_for_function("['done', 'error'].includes(document.body.dataset.state)")
    return page.evaluate("document.body.dataset.state")


def _check_result(page, answer: dict, labels: tuple[str, ...]) -> None:
    """The page shows ``answer`` (a /v1/predict body): label, and one bar per label in order."""
    assert _finish(page) == "done", page.locator("#error").inner_text()
    assert page.locator("#result").is_visible()
    assert page.locator("#error").is_hidden()
    shown = page.locator("#result-label").text_content().strip()
    assert shown == answer["label"]
    bars = page.locator("#bars [data-label]")
    if not answer["speech"]:
        assert shown == "no speech" and bars.count() == 0
        return
    assert shown in labels
    shown_bars = [bars.nth(i) for i in range(bars.count())]
    assert [bar.get_attribute("data-label") for bar in shown_bars] == list(labels)
    probabilities = [float(bar.get_attribute("data-probability")) for bar in shown_bars]
    assert math.isclose(sum(probabilities), 1.0, abs_tol=1e-3)
    assert probabilities == pytest.approx([answer["probabilities"][k] for k in labels], abs=1e-6)
    assert max(probabilities) == pytest.approx(answer["probabilities"][shown], abs=1e-6)


def test_page_upload_record_timeline_and_error(serve, page, tmp_path):
    import soundfile as sf

    from emofuse.testing import TINY_LABELS

    page.goto(serve() + "/")
    assert page.title() == "emofuse"
    info = page.locator("#model-info")
    sync_api.expect(info).to_contain_text(", ".join(TINY_LABELS))
    assert page.locator("label[for=file-input]").is_visible()
    assert page.locator("#result").get_attribute("aria-live") == "polite"

    # 1. a real speech clip through the file input: the predict answer is what is shown
    with page.expect_response("**/v1/predict") as response:
        page.set_input_files("#file-input", str(EXAMPLE))
    assert response.value.ok
    _check_result(page, response.value.json(), TINY_LABELS)
    assert page.locator("#timeline-figure").is_hidden()  # 1.9 s: no timeline

    # 2. a long clip (speech, silence, speech): whole-clip answer plus the timeline chart
    rate = 16000
    angry, sad = (sf.read(EXAMPLE.with_name(name), dtype="float32")[0] for name in EXAMPLES)
    wave = np.concatenate([angry, np.zeros(3 * rate, np.float32), sad])
    long_clip = tmp_path / "long.wav"
    sf.write(long_clip, wave, rate)
    with page.expect_response("**/v1/timeline") as timeline_response:
        with page.expect_response("**/v1/predict") as response:
            page.set_input_files("#file-input", str(long_clip))
    _check_result(page, response.value.json(), TINY_LABELS)
    timeline = timeline_response.value.json()
    chart = page.locator("svg#timeline")
    assert chart.is_visible()
    drawn = {
        chart.locator("path[data-label]").nth(i).get_attribute("data-label")
        for i in range(chart.locator("path[data-label]").count())
    }
    speech_labels = {k for s in timeline["segments"] if s["speech"] for k in s["probabilities"]}
    assert drawn == speech_labels == set(TINY_LABELS)
    shaded = chart.locator("rect[data-speech=false]").count()
    assert shaded == sum(not s["speech"] for s in timeline["segments"]) > 0
    shot = _screenshot(page, tmp_path, "page.png")
    assert shot.stat().st_size > 10_000

    # 3. the microphone (Chromium's fake device): WebM/Opus is sent on as a 16-bit WAV
    page.click("#record-start")
    sync_api.expect(page.locator("#record-stop")).to_be_enabled()
    page.wait_for_timeout(1500)
    with page.expect_response("**/v1/predict") as response:
        page.click("#record-stop")
    upload = page.evaluate("window.__uploads[window.__uploads.length - 1]")
    assert upload["name"] == "recording.wav" and upload["type"] == "audio/wav"
    assert upload["head"][:4] == "RIFF" and upload["head"][8:] == "WAVE"
    assert response.value.ok  # libsndfile read it (it cannot read MediaRecorder's WebM)
    answer = response.value.json()
    assert 0.5 < answer["duration"] < 5
    assert upload["size"] == pytest.approx(44 + 2 * answer["duration"] * rate, abs=20)
    _check_result(page, answer, TINY_LABELS)

    # 4. not audio: the server's reason is shown in #error
    with page.expect_response("**/v1/predict") as response:
        page.set_input_files(
            "#file-input",
            files=[
                {"name": "x.wav", "mimeType": "audio/wav", "buffer": b"this is not audio\n" * 20}
            ],
        )
    assert _finish(page) == "error"
    assert not response.value.ok and 400 <= response.value.status < 500
    detail = response.value.json()["detail"]
    error = page.locator("#error")
    assert error.is_visible() and error.get_attribute("role") == "alert"
    expected = detail if isinstance(detail, str) else json.dumps(detail, separators=(",", ":"))
    assert error.inner_text().strip() == expected.strip()
    assert page.locator("#result").is_hidden()
    _screenshot(page, tmp_path, "page-error.png")

    assert not [m for m in page.js_errors if "page error" in m]


def test_page_api_key(serve, page):
    """Without the key the server's 401 reason is shown; the key typed in is sent as
    X-API-Key and remembered across reloads."""
    from emofuse.testing import TINY_LABELS

    page.goto(serve(api_key="s3cret") + "/")
    sync_api.expect(page.locator("#model-info")).to_contain_text("unavailable")
    with page.expect_response("**/v1/predict") as response:
        page.set_input_files("#file-input", str(EXAMPLE))
    assert response.value.status == 401
    assert _finish(page) == "error"
    error = page.locator("#error").inner_text().strip()
    assert error == response.value.json()["detail"].strip()

    page.locator("details summary").click()
    page.fill("#api-key", "s3cret")
    page.locator("#api-key").dispatch_event("change")
    sync_api.expect(page.locator("#model-info")).to_contain_text(", ".join(TINY_LABELS))
    page.reload()
    assert page.input_value("#api-key") == "s3cret"
    sync_api.expect(page.locator("#model-info")).to_contain_text(", ".join(TINY_LABELS))
    with page.expect_request("**/v1/predict") as request:
        page.set_input_files("#file-input", str(EXAMPLE))
    assert request.value.headers.get("x-api-key") == "s3cret"
    assert _finish(page) == "done"
    assert page.locator("#result-label").text_content() in TINY_LABELS


def _live_state(page) -> str:
    """Wait until the live stream has finished; the state of #live-status, "ended" or "error"."""
    page.wait_for_function(
        "['ended', 'error'].includes(document.getElementById('live-status').dataset.state)"
    )
    return page.locator("#live-status").get_attribute("data-state")


def _live_count(page, attribute: str) -> int:
    return int(page.locator("svg#live-timeline").get_attribute(attribute))


def test_page_live_stream(serve, live_page, tmp_path):
    """Start live: the microphone (real speech from a file) goes to WS /v1/stream as 16 kHz
    16-bit PCM in 100 ms chunks, its segments are shown while it is spoken; Stop ends it."""
    from emofuse.testing import TINY_LABELS

    page = live_page
    page.goto(serve() + "/")
    sync_api.expect(page.locator("#model-info")).to_contain_text(", ".join(TINY_LABELS))
    assert page.locator("#live-output").is_hidden()
    sent: list[str | bytes] = []  # registered before any frame can go
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload)))
    with page.expect_websocket() as opened:
        page.click("#live-start")
        started = time.monotonic()
    assert opened.value.url.endswith("/v1/stream")
    sync_api.expect(page.locator("#live-stop")).to_be_enabled()
    assert page.locator("#live-start").is_disabled()

    # a segment with speech while the audio still plays (the loop is 12.6 s, its first
    # sentence ends at 2.4 s)
    page.wait_for_function(
        "Number(document.getElementById('live-timeline').dataset.speechSegments) >= 1",
        timeout=20_000,
    )
    assert page.locator("#live-status").get_attribute("data-state") == "live"
    assert _live_count(page, "data-segments") >= 1
    assert page.locator("#live-label").inner_text().strip() in TINY_LABELS
    assert page.locator("#live-confidence").inner_text().endswith("% confidence")
    chart = page.locator("svg#live-timeline")
    assert chart.is_visible() and chart.locator("path[data-label]").count() >= 1
    page.wait_for_timeout(1500)  # a little more audio, partly past the first sentence
    _screenshot(page, tmp_path, "page-live.png")

    page.click("#live-stop")
    elapsed = time.monotonic() - started
    assert _live_state(page) == "ended", page.locator("#error").inner_text()
    status = page.locator("#live-status")
    assert status.get_attribute("data-code") == "1000"
    assert status.inner_text().startswith("Ended")
    assert page.locator("#error").is_hidden()
    assert page.locator("#live-start").is_enabled() and page.locator("#live-stop").is_disabled()
    segments = _live_count(page, "data-segments")
    assert segments >= 2 and _live_count(page, "data-speech-segments") >= 1
    assert f"{segments} segment" in status.inner_text()
    label = page.locator("#live-label").inner_text().strip()
    assert label in (*TINY_LABELS, "no speech")

    # what went over the socket: the header, 100 ms chunks of 16-bit PCM, the end
    assert json.loads(sent[0]) == {"sample_rate": 16000, "format": "pcm_s16le"}
    assert json.loads(sent[-1]) == {"event": "end"}
    chunks = sent[1:-1]
    assert chunks and all(isinstance(c, bytes) and len(c) % 2 == 0 for c in chunks)
    assert all(len(c) == 3200 for c in chunks[:-1]) and 0 < len(chunks[-1]) <= 3200
    audio = np.frombuffer(b"".join(chunks), "<i2")
    assert np.abs(audio).max() > 3000  # speech, not silence
    seconds = audio.size / 16000
    # no samples lost or made up in the browser's resampling: as much audio as time went by
    assert 0.5 * elapsed < seconds < elapsed + 0.5
    heard = float(chart.get_attribute("data-heard"))
    assert heard == pytest.approx(seconds, abs=0.01)  # the server heard all of it
    assert not [m for m in page.js_errors if "page error" in m]


def test_page_live_api_key(serve, live_page, tmp_path):
    """A wrong key: the server's close reason (1008) is shown; the right one is sent as the key
    query parameter and the stream runs."""
    from urllib.parse import quote

    page = live_page
    key = "live s3cret/+&"
    page.goto(serve(api_key=key) + "/")
    page.locator("details summary").click()
    page.fill("#api-key", "wrong")
    page.locator("#api-key").dispatch_event("change")
    with page.expect_websocket() as opened:
        page.click("#live-start")
    assert opened.value.url.endswith("/v1/stream?key=wrong")
    assert _live_state(page) == "error"
    assert page.locator("#live-status").get_attribute("data-code") == "1008"
    error = page.locator("#error")
    assert error.is_visible() and "API key" in error.inner_text()
    assert page.locator("#live-start").is_enabled() and page.locator("#live-stop").is_disabled()
    _screenshot(page, tmp_path, "page-live-error.png")

    page.fill("#api-key", key)
    page.locator("#api-key").dispatch_event("change")
    with page.expect_websocket() as opened:
        page.click("#live-start")
    assert opened.value.url.endswith("/v1/stream?key=" + quote(key, safe=""))
    page.wait_for_function(
        "Number(document.getElementById('live-timeline').dataset.segments) >= 1",
        timeout=20_000,
    )
    assert page.locator("#error").is_hidden()
    page.click("#live-stop")
    assert _live_state(page) == "ended", page.locator("#error").inner_text()
    assert page.locator("#live-status").get_attribute("data-code") == "1000"
    assert page.locator("#error").is_hidden()
    assert not [m for m in page.js_errors if "page error" in m]
