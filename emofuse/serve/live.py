"""``WS /v1/stream``: the emotion of live audio over a WebSocket (:func:`add_stream_route`).

The client sends one text message ``{"sample_rate": 16000, "format": "pcm_s16le"}`` (or
``"f32le"``; optionally ``"labels": ["neutral", "happy"]`` or ``"neutral,happy"``: segments and
partials over those of the model's labels only, renormalised), then binary messages of raw mono
little-endian PCM, then the text message ``{"event": "end"}``. The server answers each event of
:meth:`EmotionRecognizer.stream` as a JSON text message as soon as it is decided (``{"type":
"segment", "start": .., "end": .., "label": .., "confidence": .., "probabilities": {..},
"heard": ..}``; ``heard``: the seconds of audio received when it was decided), then closes with
code 1000.

Every refusal is a close code with a reason: 1008 a missing or wrong API key (header, or the
``key`` query parameter for browsers), an idle stream or one longer than the limit (its last
events sent first); 1013 all streams in use; 1003 a first message that is not the JSON header,
an unknown format or labels the model does not have; 1007 a rate that is not a whole number
from 8000 to 192000 Hz (:func:`~emofuse.signal.audio.check_sample_rate`), a chunk that is not
whole samples or not finite; 1009 a chunk over ``MAX_CHUNK_SECONDS``. A client faster than real time
is not buffered without bound: each chunk is processed before the next one is read (the socket
pushes back), and the windows of all streams go through the service's batcher with the file
requests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from emofuse.inference.results import label_subset
from emofuse.inference.stream import PCM_FORMATS, decode_pcm
from emofuse.inference.timeline import WindowJob, score_jobs
from emofuse.serve.auth import authorized
from emofuse.serve.batching import Batcher
from emofuse.signal.audio import check_sample_rate
from emofuse.signal.vad import VADStream, feed_streams

__all__ = ["StreamLimits", "add_stream_route", "batch_predict"]

logger = logging.getLogger("emofuse.serve")
MAX_CHUNK_SECONDS = 10.0
QUEUED_MESSAGES = 16  # read ahead of the model per stream; then the socket pushes back
FORMATS = tuple(PCM_FORMATS)  # pcm_s16le (default), f32le and their other spellings


@dataclass(frozen=True)
class StreamLimits:
    """``max_streams`` open at once; ``idle_seconds`` without a message closes a stream;
    ``max_seconds`` of audio per stream."""

    max_streams: int = 64
    idle_seconds: float = 30.0
    max_seconds: float = 4 * 3600.0

    def __post_init__(self) -> None:
        if self.max_streams < 1 or not self.idle_seconds > 0 or not self.max_seconds > 0:
            raise ValueError(f"stream limits must be positive, got {self}")


def batch_predict(recognizer):
    """What the service's batcher runs on a mixed batch: decoded clips of file requests
    (``predict_waves``) and the window jobs of streams (:func:`score_jobs`), each in one pass."""

    def predict(items: list) -> list:
        answers: list = [None] * len(items)
        clips = [i for i, item in enumerate(items) if not isinstance(item, WindowJob)]
        jobs = [i for i, item in enumerate(items) if isinstance(item, WindowJob)]
        if clips:
            for i, p in zip(clips, recognizer.predict_waves([items[i] for i in clips]),
                            strict=True):  # fmt: skip
                answers[i] = p
        if jobs:
            scored = score_jobs(recognizer.backend, [items[i] for i in jobs])
            for i, probabilities in zip(jobs, scored, strict=True):
                answers[i] = probabilities
        return answers

    return predict


class _Refused(Exception):
    """Close the socket with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def _header(text: str | None, model_labels: Sequence[str]) -> tuple[int, str, tuple | None]:
    """The first message -> (sample rate, format, labels chosen or None), or :class:`_Refused`
    saying what is wrong."""
    example = '{"sample_rate": 16000, "format": "pcm_s16le"}'
    if text is None:
        raise _Refused(1003, f"the first message must be the JSON text header {example}")
    try:
        header = json.loads(text)
    except json.JSONDecodeError:
        raise _Refused(1003, f"the first message is not JSON; send {example}") from None
    if not isinstance(header, dict):
        raise _Refused(1003, f"the header must be a JSON object like {example}")
    pcm = header.get("format", "pcm_s16le")
    if pcm not in FORMATS:
        raise _Refused(1003, f"unknown format {pcm!r}: pcm_s16le (s16le) or f32le (pcm_f32le)")
    try:
        rate = check_sample_rate(header.get("sample_rate"))
    except ValueError as error:
        raise _Refused(1007, str(error)) from None
    labels = header.get("labels")
    if not isinstance(labels, str | list | None):
        raise _Refused(1003, f"labels must be a list of names or one comma-separated string, got "
                             f"{labels!r}")  # fmt: skip
    try:
        return rate, pcm, label_subset(model_labels, labels)
    except ValueError as error:
        raise _Refused(1003, str(error)) from None


def _message(event, heard: float) -> str:
    out = event.to_dict()
    if out.get("probabilities"):
        out["probabilities"] = {k: round(p, 4) for k, p in out["probabilities"].items()}
        out["confidence"] = round(out["confidence"], 4)
    return json.dumps({**out, "heard": round(heard, 3)})


class _HideKeys(logging.Filter):
    """Hide the ``key`` query parameter (a browser's API key) in the server's log lines
    (uvicorn logs each WebSocket's path with its query)."""

    pattern = re.compile(r"([?&]key=)[^&\s\"]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self.pattern.sub(r"\1***", a) if isinstance(a, str) else a
                                for a in record.args)  # fmt: skip
        if isinstance(record.msg, str):
            record.msg = self.pattern.sub(r"\1***", record.msg)
        return True


def add_stream_route(app: FastAPI, recognizer, batcher, api_key: str | None,
                     limits: StreamLimits) -> tuple[ThreadPoolExecutor, Batcher]:  # fmt: skip
    """Add ``WS /v1/stream`` to ``app``: streams of ``recognizer`` whose windows go through
    ``batcher`` (made with :func:`batch_predict`). Returns what to close with the app: the
    threads that run the streams, the batcher of their voice activity detection."""
    server_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideKeys) for f in server_log.filters):
        server_log.addFilter(_HideKeys())
    pool = ThreadPoolExecutor(limits.max_streams, thread_name_prefix="emofuse-stream")
    # the new audio of all streams through voice activity detection in one pass
    voices = Batcher(lambda items: feed_streams(*zip(*items, strict=True)), max_batch=256)
    open_streams = {"count": 0}  # touched only on the event loop

    def score(job: WindowJob) -> np.ndarray:
        future: Future = batcher.submit(job)
        return future.result()

    def speech_probabilities(vad: VADStream, block: np.ndarray) -> np.ndarray:
        future: Future = voices.submit((vad, block))
        return future.result()

    async def received(websocket: WebSocket) -> dict:
        try:
            message = await asyncio.wait_for(websocket.receive(), limits.idle_seconds)
        except TimeoutError:
            raise _Refused(1008, f"idle: nothing received for {limits.idle_seconds:g} s") from None
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        return message

    async def serve_stream(websocket: WebSocket) -> None:
        loop = asyncio.get_running_loop()
        rate, pcm, labels = _header((await received(websocket)).get("text"), recognizer.labels)
        stream = recognizer.stream(rate, score=score, speech_probabilities=speech_probabilities,
                                   labels=labels)  # fmt: skip
        most = round(MAX_CHUNK_SECONDS * rate) * PCM_FORMATS[pcm].itemsize
        inbox: asyncio.Queue = asyncio.Queue(QUEUED_MESSAGES)  # full: the socket pushes back

        async def read() -> None:  # messages (or what ended the reading) into the inbox
            try:
                while True:
                    message = await received(websocket)
                    await inbox.put(message)
                    if message.get("bytes") is None:
                        return
            except (_Refused, WebSocketDisconnect) as error:
                await inbox.put(error)

        def chunk(message: dict) -> np.ndarray:
            data = message["bytes"]
            if len(data) > most:
                raise _Refused(1009, f"a chunk of {len(data)} bytes is over "
                                     f"{MAX_CHUNK_SECONDS:g} s of audio")  # fmt: skip
            try:
                return decode_pcm(data, pcm)
            except ValueError as error:
                raise _Refused(1007, str(error)) from None

        async def run(work, *args) -> None:  # in the pool; its events sent in order
            try:
                events = await loop.run_in_executor(pool, work, *args)
            except ValueError as error:
                raise _Refused(1007, str(error)) from None
            for event in events:
                await websocket.send_text(_message(event, stream.seconds))

        reader, held = asyncio.create_task(read()), None
        try:
            while True:
                message, held = held or await inbox.get(), None
                if isinstance(message, Exception):
                    raise message
                if message.get("bytes") is None:
                    break
                chunks = [chunk(message)]  # and the chunks waiting: one pass when behind
                while held is None and not inbox.empty():
                    following = inbox.get_nowait()
                    if isinstance(following, dict) and following.get("bytes") is not None:
                        chunks.append(chunk(following))
                    else:
                        held = following
                await run(stream.feed, np.concatenate(chunks))
                if stream.seconds > limits.max_seconds:
                    await run(stream.close)
                    raise _Refused(1008, f"stream longer than the limit of "
                                         f"{limits.max_seconds:g} s")  # fmt: skip
        finally:
            reader.cancel()
        try:
            end = json.loads(message.get("text") or "null")
        except json.JSONDecodeError:
            end = None
        if end != {"event": "end"}:
            raise _Refused(1003, 'after the header, send binary audio, then the text message '
                                 '{"event": "end"}')  # fmt: skip
        await run(stream.close)
        await websocket.close(1000)

    @app.websocket("/v1/stream")
    async def live(websocket: WebSocket) -> None:
        await websocket.accept()
        if api_key and not authorized(websocket, api_key, query=True):
            await _close(
                websocket,
                1008,
                "missing or wrong API key (X-API-Key or "
                "Authorization header, or the key query parameter)",
            )
            return
        if open_streams["count"] >= limits.max_streams:
            await _close(websocket, 1013, f"server busy: {limits.max_streams} streams open "
                                          "(the limit); retry later")  # fmt: skip
            return
        open_streams["count"] += 1
        try:
            await serve_stream(websocket)
        except _Refused as refused:
            await _close(websocket, refused.code, refused.reason)
        except WebSocketDisconnect:
            pass  # the client went away: its stream is simply dropped
        except Exception:
            logger.exception("stream failed")
            await _close(websocket, 1011, "internal error")
        finally:
            open_streams["count"] -= 1

    return pool, voices


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    """Close with ``code`` and ``reason`` (at most 123 bytes), unless the client is gone."""
    try:
        await websocket.close(code, reason.encode()[:123].decode(errors="ignore"))
    except (RuntimeError, WebSocketDisconnect, OSError):
        pass
