"""The web page of ``emofuse serve`` in a real browser: headless Chromium (Debian's
/usr/bin/chromium, never a downloaded one) driven by Playwright, against the real server.

Skips when Chromium or Playwright is missing. Set ``EMOFUSE_SCREENSHOT_DIR`` to keep the
screenshots.
"""

from __future__ import annotations

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


@pytest.fixture
def page():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",  # needed as root (containers, CI)
                "--use-fake-ui-for-media-stream",  # allow the microphone without asking
                "--use-fake-device-for-media-stream",  # a synthetic microphone (beeps)
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
