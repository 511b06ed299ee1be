"""``emofuse serve``: the REST service (:mod:`emofuse.serve`) on a local port."""

from __future__ import annotations

import argparse
import os

from emofuse.cli.common import add_model_args, add_runtime_args, load_recognizer, say_precision

__all__ = ["add_commands"]

INSTALL_HINT = (
    "emofuse serve needs fastapi, uvicorn, python-multipart and websockets: "
    "pip install 'emofuse[serve]'"
)


def _require_server_packages() -> None:
    """An ImportError naming the extra to install when a server package is missing."""
    import importlib

    for module in ("fastapi", "uvicorn", "python_multipart", "websockets"):
        try:
            importlib.import_module(module)
        except ImportError:
            raise ImportError(f"{INSTALL_HINT} (missing: {module})") from None


def cmd_serve(args: argparse.Namespace) -> None:
    _require_server_packages()
    import logging

    import torch
    import uvicorn

    from emofuse.serve.app import create_app
    from emofuse.serve.live import StreamLimits

    if args.threads < 1:
        raise ValueError(f"--threads must be positive, got {args.threads}")
    if args.max_upload_mb <= 0 or args.max_predict_seconds <= 0:
        raise ValueError("--max-upload-mb and --max-predict-seconds must be positive")

    def one_torch_thread() -> None:  # each inference worker: one torch thread
        torch.set_num_threads(1)

    one_torch_thread()
    recognizer = load_recognizer(args, threads=1)
    say_precision(recognizer)
    app = create_app(
        recognizer,
        max_upload_mb=args.max_upload_mb,
        api_key=args.api_key or os.environ.get("EMOFUSE_API_KEY") or None,
        workers=args.threads,
        max_predict_seconds=args.max_predict_seconds,
        cors_origins=args.cors_origin,
        worker_init=one_torch_thread,
        stream_limits=StreamLimits(args.max_streams, args.stream_idle_seconds,
                                   args.max_stream_seconds),  # fmt: skip
    )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:  %(name)s %(message)s")
    # access_log off: the app logs each request itself, with its request id
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False)


def add_commands(commands: argparse._SubParsersAction) -> None:
    """``serve``."""
    serve = commands.add_parser(
        "serve",
        help="a REST service and web page for emotion predictions (needs emofuse[serve])",
        description="Serve the model over HTTP: POST /v1/predict and /v1/timeline (audio as the "
        "raw body or the 'file' field of a multipart form), live audio over the WebSocket "
        "/v1/stream, GET /v1/model, /healthz, the web page at / and the OpenAPI schema at "
        "/openapi.json. Uploads stay in memory.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument(
        "--max-upload-mb", type=float, default=25.0, metavar="MB",
        help="largest upload accepted (default: 25); larger ones get 413",
    )  # fmt: skip
    serve.add_argument(
        "--max-predict-seconds", type=float, default=60.0, metavar="S",
        help="longest clip /v1/predict takes (default: 60); longer: use /v1/timeline",
    )  # fmt: skip
    add_model_args(serve)
    add_runtime_args(serve, threads=1, device=True)
    serve.add_argument(
        "--api-key", metavar="KEY",
        help="require this key (X-API-Key: KEY or Authorization: Bearer KEY) on every endpoint "
        "but /healthz and the web page (default: the EMOFUSE_API_KEY variable; none: open)",
    )  # fmt: skip
    serve.add_argument(
        "--cors-origin", action="append", metavar="ORIGIN",
        help="allow browser calls from this origin (repeatable; default: no CORS)",
    )  # fmt: skip
    serve.add_argument("--max-streams", type=int, default=64, metavar="N",
                       help="live streams open at once (default: 64); more are closed with "
                       "code 1013")  # fmt: skip
    serve.add_argument("--stream-idle-seconds", type=float, default=30.0, metavar="S",
                       help="close a live stream that sends nothing for this long (default: 30)")
    serve.add_argument("--max-stream-seconds", type=float, default=4 * 3600.0, metavar="S",
                       help="longest live stream, seconds of audio (default: 14400)")
    serve.set_defaults(func=cmd_serve)
