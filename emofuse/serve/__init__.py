"""``emofuse serve``: a REST service (FastAPI) over :class:`~emofuse.inference.EmotionRecognizer`.

Optional: needs ``pip install 'emofuse[serve]'`` (fastapi, uvicorn, python-multipart), imported
only when :func:`create_app` is first used, so ``import emofuse`` works without them.
"""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from emofuse.serve.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
