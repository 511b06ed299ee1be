"""The REST service behind ``emofuse serve``: :func:`create_app` over an
:class:`~emofuse.inference.EmotionRecognizer`.

Endpoints (JSON; every error is ``{"detail": str, "request_id": str}``):

- ``GET /healthz``: ``{"status": "ok"}``; never needs the key, never waits for inference.
- ``GET /v1/model``: the served model (:func:`~emofuse.serve.model_info.model_description`:
  labels, rate, windows, its metadata, card and training report when bundled), the version and
  the service limits.
- ``POST /v1/predict``: the emotion of one clip (at most ``max_predict_seconds``).
- ``POST /v1/timeline``: segments of a longer recording (query ``window``, ``hop`` in seconds).
- Both take the query ``labels=neutral,happy``: the answer over those of the model's labels
  only, probabilities renormalised over them (422 naming an unknown one and the model's).
- ``WS /v1/stream``: the events of live audio as it is spoken (:mod:`emofuse.serve.live`).
- ``GET /``: the web page; ``/static/...`` its assets; ``/openapi.json`` the schema.

Audio is uploaded as the ``file`` field of a ``multipart/form-data`` form or as the raw body
(any other content type). It is read and decoded in memory, never written to disk. Inference
runs in a pool of ``workers`` threads; at most ``max_queue`` uploads are read, waiting or
running at once, further ones are answered 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from emofuse.inference.results import label_subset, restricted
from emofuse.serve.auth import authorized
from emofuse.serve.batching import Batcher
from emofuse.serve.live import StreamLimits, add_stream_route, batch_predict
from emofuse.serve.model_info import model_description
from emofuse.serve.slots import Slots
from emofuse.serve.uploads import UploadError, read_upload
from emofuse.signal.audio import AudioError, decode_audio

__all__ = ["create_app", "STATIC_DIR"]

STATIC_DIR = Path(__file__).parent / "static"
logger = logging.getLogger("emofuse.serve")

_OPEN_PATHS = ("/healthz", "/")  # no API key needed (nor under /static/)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_LABELS = Query(None, description="comma-separated labels to answer over (default: all the "
                "model's), probabilities renormalised over them")  # fmt: skip
# AudioError reasons that are the audio's content, not its format (422 rather than 415).
_UNUSABLE = ("empty", "contains zero samples", "contains non-finite", "longer than", "too short")


class ApiError(Exception):
    """An answer other than 200: ``status`` and ``detail`` (and extra ``headers``)."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        self.status, self.detail, self.headers = status, detail, headers or {}
        super().__init__(detail)


class Answered(NamedTuple):
    """An upload's ``seconds`` of audio and what the work made of its wave."""

    seconds: float
    result: Any


def _result(label: str, probabilities: dict[str, float], silent: bool, reason: str | None) -> dict:
    """The fields a prediction and a timeline segment share, rounded for JSON."""
    return {
        "label": label,
        "confidence": round(probabilities.get(label, 0.0), 4),
        "probabilities": {k: round(float(p), 4) for k, p in probabilities.items()},
        "speech": not silent,
        "reason": reason,
    }


def _audio_status(error: AudioError) -> int:
    return 422 if error.reason.startswith(_UNUSABLE) else 415


def create_app(
    recognizer,
    *,
    max_upload_mb: float = 25.0,
    api_key: str | None = None,
    workers: int = 1,
    max_queue: int = 16,
    max_predict_seconds: float = 60.0,
    max_timeline_seconds: float = 3600.0,
    model_name: str | None = None,
    cors_origins: list[str] | None = None,
    worker_init: Callable[[], None] | None = None,
    stream_limits: StreamLimits | None = None,
) -> FastAPI:
    """The service for ``recognizer`` (an :class:`~emofuse.inference.EmotionRecognizer`).

    ``api_key``: when set, every endpoint but ``/healthz``, ``/`` and ``/static/`` needs it
    (``X-API-Key: KEY`` or ``Authorization: Bearer KEY``). ``workers``: inference threads
    (``worker_init`` runs in each, e.g. to give each one torch thread). ``max_queue``: uploads
    in progress at once (read, waiting or running). ``cors_origins``: origins allowed to call
    from a browser (none by default: no CORS headers at all). ``stream_limits``: of
    ``WS /v1/stream`` (:class:`~emofuse.serve.live.StreamLimits`).
    """
    if workers < 1 or max_queue < 1:
        raise ValueError(f"workers and max_queue must be positive, got {workers}, {max_queue}")
    if max_upload_mb <= 0 or max_predict_seconds <= 0 or max_timeline_seconds <= 0:
        raise ValueError("max_upload_mb, max_predict_seconds and max_timeline_seconds must be "
                         "positive")  # fmt: skip
    from emofuse import __version__

    max_bytes = round(max_upload_mb * 2**20)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="emofuse-serve", initializer=worker_init)
    # /v1/predict's clips and the windows of live streams, classified together
    batcher = Batcher(batch_predict(recognizer), workers=workers, worker_init=worker_init)
    stream_limits = stream_limits or StreamLimits()
    uploads = Slots(max_queue)  # in progress: read, waiting or running
    model_info = {
        **model_description(recognizer, model_name),
        "version": __version__,
        "max_upload_mb": max_upload_mb,
        "max_predict_seconds": max_predict_seconds,
        "max_timeline_seconds": max_timeline_seconds,
        "max_streams": stream_limits.max_streams,
        "stream_idle_seconds": stream_limits.idle_seconds,
        "max_stream_seconds": stream_limits.max_seconds,
    }

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        pool.shutdown(wait=False, cancel_futures=True)
        live.close()
        batcher.close()

    app = FastAPI(
        title="emofuse",
        version=__version__,
        description="Speech emotion recognition: upload audio, get its emotion.",
        docs_url=None,  # Swagger UI and ReDoc load from a CDN; users may be offline
        redoc_url=None,
        lifespan=lifespan,
    )

    def error(request: Request, status: int, detail: str, headers: dict | None = None):
        request_id = getattr(request.state, "request_id", None) or uuid.uuid4().hex
        return JSONResponse(
            {"detail": detail, "request_id": request_id}, status_code=status, headers=headers
        )

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error(request, exc.status, exc.detail, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(request, exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [
            f"{'.'.join(str(x) for x in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}"
            for e in exc.errors()
        ]
        return error(request, 422, "; ".join(parts) or "invalid request")

    @app.middleware("http")
    async def request_id_auth_log(request: Request, call_next):
        started = time.perf_counter()
        given = request.headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        request.state.request_id = request_id
        path = request.url.path
        try:
            open_path = path in _OPEN_PATHS or path.startswith("/static/")
            if api_key and not open_path and not authorized(request, api_key):
                response = error(
                    request, 401, "missing or wrong API key (send X-API-Key: KEY or "
                    "Authorization: Bearer KEY)", {"WWW-Authenticate": "Bearer"},
                )  # fmt: skip
            else:
                response = await call_next(request)
        except Exception:
            logger.exception("%s %s %s failed", request_id, request.method, path)
            response = error(request, 500, "internal server error")
        response.headers["X-Request-ID"] = request_id
        ms = (time.perf_counter() - started) * 1000
        logger.info("%s %s %s %d %.1f ms", request_id, request.method, path,
                    response.status_code, ms)  # fmt: skip
        return response

    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "X-Request-ID", "Content-Type"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )

    def subset(labels: str | None) -> tuple[str, ...] | None:
        """The ``labels`` query checked against the model's labels (422 if it names others)."""
        try:
            return label_subset(recognizer.labels, labels)
        except ValueError as exc:
            raise ApiError(422, str(exc)) from None

    async def run(
        request: Request, work: Callable[[np.ndarray], Awaitable], limit: float
    ) -> Answered:
        """Read the upload, decode it in the pool and await ``work(wave)``, within the queue."""
        if not uploads.take():
            raise ApiError(503, f"server busy: {uploads.used} requests in progress; retry "
                           "shortly", {"Retry-After": "1"})  # fmt: skip
        try:
            headers = {k.lower(): v for k, v in request.headers.items()}
            try:
                data = await read_upload(headers, request.stream(), max_bytes)
            except UploadError as exc:
                raise ApiError(exc.status, exc.detail) from None
            if not data:
                raise ApiError(422, "empty upload: send an audio file as the request body or as "
                               "the 'file' field of a multipart/form-data form")  # fmt: skip

            def decode() -> np.ndarray:
                wave = decode_audio(data, recognizer.sample_rate, max_seconds=limit)
                seconds = wave.size / recognizer.sample_rate
                if seconds > limit:  # a header that understated the length
                    raise AudioError(
                        "upload", f"longer than the limit: {seconds:.1f} s > {limit:g} s"
                    )
                return wave

            try:
                wave = await asyncio.get_running_loop().run_in_executor(pool, decode)
                return Answered(wave.size / recognizer.sample_rate, await work(wave))
            except AudioError as exc:
                raise ApiError(_audio_status(exc), f"{exc.reason}") from None
        finally:
            uploads.release()

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict:
        """Liveness: answers at once, also while inference runs."""
        return {"status": "ok"}

    @app.get("/v1/model", tags=["model"])
    async def model() -> dict:
        """The model and the service limits."""
        return model_info

    @app.post("/v1/predict", tags=["model"])
    async def predict(request: Request, labels: str | None = _LABELS) -> dict:
        """The emotion of one clip: the audio as the raw body or as the ``file`` field of a
        multipart form. Longer clips than ``max_predict_seconds``: use ``/v1/timeline``."""
        chosen = subset(labels)
        try:
            answered = await run(
                request, lambda wave: asyncio.wrap_future(batcher.submit(wave)),
                max_predict_seconds,
            )  # fmt: skip
        except ApiError as exc:
            if exc.status == 422 and exc.detail.startswith("longer than"):
                exc.detail = (f"audio {exc.detail.removeprefix('longer than the limit: ')}: "
                              f"/v1/predict takes at most {max_predict_seconds:g} s; use "
                              "/v1/timeline for longer recordings")  # fmt: skip
            raise
        p = restricted(answered.result, chosen)
        return {
            "request_id": request.state.request_id,
            **_result(p.label, p.probabilities, p.silent, p.reason),
            "duration": round(answered.seconds, 3),
        }

    @app.post("/v1/timeline", tags=["model"])
    async def timeline(
        request: Request,
        window: float | None = Query(None, gt=0, le=60, description="window in seconds"),
        hop: float | None = Query(None, ge=0.1, le=60, description="hop in seconds"),
        labels: str | None = _LABELS,
    ) -> dict:
        """Segments of a recording (at most ``max_timeline_seconds``), cut at speech
        boundaries: the audio as the raw body or as the ``file`` field of a multipart form."""

        chosen = subset(labels)
        used_window = recognizer.backend.window_seconds if window is None else window
        used_hop = recognizer.backend.hop_seconds if hop is None else hop
        if used_hop > used_window:
            raise ApiError(422, f"hop ({used_hop:g} s) must not exceed window "
                           f"({used_window:g} s)")  # fmt: skip

        def segments(wave: np.ndarray) -> list:
            return list(recognizer.timeline(
                wave, recognizer.sample_rate, labels=chosen, window_seconds=used_window,
                hop_seconds=used_hop,
            ))  # fmt: skip

        answered = await run(
            request,
            lambda wave: asyncio.get_running_loop().run_in_executor(pool, segments, wave),
            max_timeline_seconds,
        )
        return {
            "request_id": request.state.request_id,
            "duration": round(answered.seconds, 3),
            "segments": [
                {"start": round(s.start, 3), "end": round(s.end, 3),
                 **_result(s.label, s.probabilities, s.silent, s.reason)}
                for s in answered.result
            ],
        }  # fmt: skip

    @app.get("/", include_in_schema=False)
    async def index(request: Request):
        page = STATIC_DIR / "index.html"
        if not page.is_file():
            raise ApiError(404, "no web page installed (emofuse/serve/static/index.html)")
        return FileResponse(page, media_type="text/html")

    live = add_stream_route(app, recognizer, batcher, api_key, stream_limits)
    if STATIC_DIR.is_dir():
        from fastapi.staticfiles import StaticFiles

        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
