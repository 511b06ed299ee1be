"""``WS /v1/stream``: the emotion of live audio over a WebSocket (:func:`add_stream_route`: a
:class:`LiveRoute` shared by the app's connections, one :class:`LiveSession` per connection).

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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from emofuse.inference.results import StreamEvent, label_subset
from emofuse.inference.stream import PCM_FORMATS, EmotionStream, decode_pcm
from emofuse.inference.timeline import WindowJob, score_jobs
from emofuse.serve.auth import authorized
from emofuse.serve.batching import Batcher
from emofuse.serve.slots import Slots
from emofuse.signal.audio import check_sample_rate
from emofuse.signal.vad import VADStream, feed_streams

if TYPE_CHECKING:
    from emofuse.inference.recognizer import EmotionRecognizer

__all__ = ["LiveRoute", "LiveSession", "StreamHeader", "StreamLimits", "add_stream_route",
           "batch_predict"]  # fmt: skip

logger = logging.getLogger("emofuse.serve")
MAX_CHUNK_SECONDS = 10.0
QUEUED_MESSAGES = 16  # read ahead of the model per stream; then the socket pushes back
FORMATS = tuple(PCM_FORMATS)  # pcm_s16le (default), f32le and their other spellings
Message = dict[str, Any]  # an ASGI WebSocket message: its "type", "text" or "bytes"


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


def batch_predict(recognizer: EmotionRecognizer) -> Callable[[list], list]:
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


class VoiceBlock(NamedTuple):
    """New audio of one stream for voice activity detection, batched with other streams'."""

    vad: VADStream
    block: np.ndarray  # (samples,) float32 at the detector's rate


def _detect_voices(items: list[VoiceBlock]) -> list[np.ndarray]:
    """The speech probabilities of each stream's new audio, all streams in one pass."""
    return feed_streams([item.vad for item in items], [item.block for item in items])


class _Refused(Exception):
    """Close the socket with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass(frozen=True)
class StreamHeader:
    """The first message of a stream: ``sample_rate`` (Hz), ``pcm_format`` (one of
    :data:`FORMATS`), ``labels`` to answer over (None: all the model's)."""

    sample_rate: int
    pcm_format: str
    labels: tuple[str, ...] | None

    @classmethod
    def parse(cls, text: str | None, model_labels: Sequence[str]) -> StreamHeader:
        """The header in ``text`` (None: the first message was binary), or :class:`_Refused`
        saying what is wrong (1003, or 1007 for the rate)."""
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
            raise _Refused(1003, f"unknown format {pcm!r}: pcm_s16le (s16le) or f32le "
                                 "(pcm_f32le)")  # fmt: skip
        try:
            rate = check_sample_rate(header.get("sample_rate"))
        except ValueError as error:
            raise _Refused(1007, str(error)) from None
        labels = header.get("labels")
        if not isinstance(labels, str | list | None):
            raise _Refused(1003, f"labels must be a list of names or one comma-separated string, "
                                 f"got {labels!r}")  # fmt: skip
        try:
            return cls(rate, pcm, label_subset(model_labels, labels))
        except ValueError as error:
            raise _Refused(1003, str(error)) from None


def _message(event: StreamEvent, heard: float) -> str:
    """``event`` as the JSON text sent, with ``heard``: the seconds received when decided."""
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


async def _received(websocket: WebSocket, idle_seconds: float) -> Message:
    """The next message; :class:`_Refused` (1008) after ``idle_seconds`` without one,
    :class:`WebSocketDisconnect` when the client went away."""
    try:
        message = await asyncio.wait_for(websocket.receive(), idle_seconds)
    except TimeoutError:
        raise _Refused(1008, f"idle: nothing received for {idle_seconds:g} s") from None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    return message


class LiveRoute:
    """``WS /v1/stream`` of one app: what its sessions share (the recogniser, the batchers of
    windows and of voice activity, the threads that run the streams, the limits, the sessions
    open) and the endpoint, :meth:`serve`."""

    def __init__(self, recognizer: EmotionRecognizer, batcher: Batcher, api_key: str | None,
                 limits: StreamLimits) -> None:  # fmt: skip
        self.recognizer, self.batcher, self.api_key, self.limits = (recognizer, batcher,
                                                                   api_key, limits)  # fmt: skip
        self.pool = ThreadPoolExecutor(limits.max_streams, thread_name_prefix="emofuse-stream")
        # the new audio of all streams through voice activity detection in one pass
        self.voices = Batcher(_detect_voices, max_batch=256)
        self.sessions = Slots(limits.max_streams)

    def score(self, job: WindowJob) -> np.ndarray:
        """A stream's window job, classified with the others' and the file requests' clips."""
        return self.batcher.submit(job).result()

    def speech_probabilities(self, vad: VADStream, block: np.ndarray) -> np.ndarray:
        """A stream's new audio, through voice activity detection with the others'."""
        return self.voices.submit(VoiceBlock(vad, block)).result()

    async def serve(self, websocket: WebSocket) -> None:
        """One connection: accepted, its key and a free place checked, its session run; every
        refusal or failure closed with its code and reason."""
        await websocket.accept()
        if self.api_key and not authorized(websocket, self.api_key, query=True):
            await _close(websocket, 1008, "missing or wrong API key (X-API-Key or Authorization "
                                          "header, or the key query parameter)")  # fmt: skip
            return
        if not self.sessions.take():
            await _close(websocket, 1013, f"server busy: {self.limits.max_streams} streams open "
                                          "(the limit); retry later")  # fmt: skip
            return
        try:
            await (await LiveSession.open(websocket, self)).run()
        except _Refused as refused:
            await _close(websocket, refused.code, refused.reason)
        except WebSocketDisconnect:
            pass  # the client went away: its stream is simply dropped
        except Exception:
            logger.exception("stream failed")
            await _close(websocket, 1011, "internal error")
        finally:
            self.sessions.release()

    def close(self) -> None:
        """Stop the streams' threads (what is queued is dropped) and the voice batcher."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.voices.close()


class LiveSession:
    """One live WebSocket session, step by step: :meth:`open` reads and checks the header and
    opens the stream; :meth:`run` reads the messages ahead into an inbox (:meth:`_read`), feeds
    the binary chunks as they come (:meth:`_feed_audio`, each checked by :meth:`_chunk`), sends
    the events decided (:meth:`_send`) and, at the end message, the last ones before closing
    with 1000 (:meth:`_finish`). A refusal is a :class:`_Refused` with its close code."""

    def __init__(self, websocket: WebSocket, route: LiveRoute, header: StreamHeader) -> None:
        self.websocket, self.route, self.header = websocket, route, header
        self.stream: EmotionStream = route.recognizer.stream(
            header.sample_rate, score=route.score,
            speech_probabilities=route.speech_probabilities, labels=header.labels,
        )  # fmt: skip
        self.max_bytes = (round(MAX_CHUNK_SECONDS * header.sample_rate)
                          * PCM_FORMATS[header.pcm_format].itemsize)  # fmt: skip
        # messages (or what ended the reading); full: the socket pushes back
        self.inbox: asyncio.Queue[Message | Exception] = asyncio.Queue(QUEUED_MESSAGES)

    @classmethod
    async def open(cls, websocket: WebSocket, route: LiveRoute) -> LiveSession:
        """The session of the header that ``websocket`` sends first."""
        first = await _received(websocket, route.limits.idle_seconds)
        return cls(websocket, route, StreamHeader.parse(first.get("text"), route.recognizer.labels))

    async def run(self) -> None:
        """Feed the audio as it comes, then finish at the end message."""
        reader = asyncio.create_task(self._read())
        try:
            last = await self._feed_audio()
        finally:
            reader.cancel()
        await self._finish(last)

    async def _read(self) -> None:
        """Messages into the inbox until one that is not audio, or what ended the reading."""
        try:
            while True:
                message = await _received(self.websocket, self.route.limits.idle_seconds)
                await self.inbox.put(message)
                if message.get("bytes") is None:
                    return
        except (_Refused, WebSocketDisconnect) as error:
            await self.inbox.put(error)

    async def _feed_audio(self) -> Message:
        """Feed the chunks of the inbox (those waiting together: one pass when behind) and
        send their events, until a message that is not audio: returned."""
        held: Message | Exception | None = None
        while True:
            message = held if held is not None else await self.inbox.get()
            held = None
            if isinstance(message, Exception):
                raise message
            if message.get("bytes") is None:
                return message
            chunks = [self._chunk(message)]
            while held is None and not self.inbox.empty():
                following = self.inbox.get_nowait()
                if isinstance(following, dict) and following.get("bytes") is not None:
                    chunks.append(self._chunk(following))
                else:
                    held = following
            await self._send(self.stream.feed, np.concatenate(chunks))
            if self.stream.seconds > self.route.limits.max_seconds:
                await self._send(self.stream.close)
                raise _Refused(1008, f"stream longer than the limit of "
                                     f"{self.route.limits.max_seconds:g} s")  # fmt: skip

    def _chunk(self, message: Message) -> np.ndarray:
        """A binary message -> its samples (n,), or :class:`_Refused`: 1009 over
        ``MAX_CHUNK_SECONDS``, 1007 not whole samples."""
        data = message["bytes"]
        if len(data) > self.max_bytes:
            raise _Refused(1009, f"a chunk of {len(data)} bytes is over "
                                 f"{MAX_CHUNK_SECONDS:g} s of audio")  # fmt: skip
        try:
            return decode_pcm(data, self.header.pcm_format)
        except ValueError as error:
            raise _Refused(1007, str(error)) from None

    async def _send(self, work: Callable[..., list[StreamEvent]], *args: Any) -> None:
        """Run ``work(*args)`` (the stream's feed or close) in the route's threads and send the
        events it returns, in order; its ValueError (a bad chunk) is 1007."""
        loop = asyncio.get_running_loop()
        try:
            events = await loop.run_in_executor(self.route.pool, work, *args)
        except ValueError as error:
            raise _Refused(1007, str(error)) from None
        for event in events:
            await self.websocket.send_text(_message(event, self.stream.seconds))

    async def _finish(self, message: Message) -> None:
        """At the end message ``{"event": "end"}`` (anything else: 1003), the last events,
        then close with 1000."""
        try:
            end = json.loads(message.get("text") or "null")
        except json.JSONDecodeError:
            end = None
        if end != {"event": "end"}:
            raise _Refused(1003, 'after the header, send binary audio, then the text message '
                                 '{"event": "end"}')  # fmt: skip
        await self._send(self.stream.close)
        await self.websocket.close(1000)


def add_stream_route(app: FastAPI, recognizer: EmotionRecognizer, batcher: Batcher,
                     api_key: str | None, limits: StreamLimits) -> LiveRoute:  # fmt: skip
    """Add ``WS /v1/stream`` to ``app``: streams of ``recognizer`` whose windows go through
    ``batcher`` (made with :func:`batch_predict`). Returns the route, to
    :meth:`~LiveRoute.close` with the app."""
    server_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideKeys) for f in server_log.filters):
        server_log.addFilter(_HideKeys())
    route = LiveRoute(recognizer, batcher, api_key, limits)
    app.add_api_websocket_route("/v1/stream", route.serve)
    return route


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    """Close with ``code`` and ``reason`` (at most 123 bytes), unless the client is gone."""
    try:
        await websocket.close(code, reason.encode()[:123].decode(errors="ignore"))
    except (RuntimeError, WebSocketDisconnect, OSError):
        pass
