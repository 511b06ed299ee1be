"""On-disk cache of raw (unnormalised) stream frames, one folder per stream kind and settings.

An entry's name hashes the audio file's resolved path, size and modification time, and its
folder hashes the stream's kind and settings (not its name), so an edited file or changed
settings never read a stale entry, and adding a stream never recomputes the others. Entries are
written atomically: a killed run leaves no half-written file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from emofuse.files import atomic_path
from emofuse.signal.audio import load_audio
from emofuse.signal.streams import StreamFrontEnd, StreamSpec, check_streams, make_kind

__all__ = ["StreamCache", "cached_array", "default_cache_dir", "file_key"]

CACHE_VERSION = 2


def default_cache_dir() -> Path:
    """``$EMOFUSE_CACHE``, else ``$XDG_CACHE_HOME/emofuse/features`` (``~/.cache`` by default)."""
    if "EMOFUSE_CACHE" in os.environ:
        return Path(os.environ["EMOFUSE_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "emofuse" / "features"


def stream_key(spec: StreamSpec) -> str:
    """Folder name of a stream's entries: its kind and a hash of its settings."""
    text = json.dumps({"version": CACHE_VERSION, "kind": spec.kind, **spec.settings},
                      sort_keys=True)  # fmt: skip
    return f"{spec.kind}-{hashlib.sha1(text.encode()).hexdigest()[:16]}"


def file_key(path: Path) -> str:
    """Identity of a file: hash of its resolved path, size and modification time."""
    stat = path.stat()
    identity = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha1(identity.encode()).hexdigest()


def cached_array(entry: Path, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """The array stored at ``entry``; on a miss, ``compute()`` is stored there atomically."""
    if entry.exists():
        return np.load(entry)
    values = compute()
    _save_array(entry, values)
    return values


def _save_array(entry: Path, values: np.ndarray) -> None:
    with atomic_path(entry) as tmp:
        np.save(tmp, values)


class StreamCache:
    """Raw frames of whole files, ``{stream name: (dims, frames) float32}``, for ``streams``."""

    def __init__(
        self, streams: Sequence[StreamSpec], root: str | os.PathLike | None = None
    ) -> None:
        self.streams = check_streams(streams)
        self.root = Path(root or default_cache_dir())
        self.sample_rate = make_kind(self.streams[0]).sample_rate
        self._frontends: dict[tuple[str, ...], StreamFrontEnd] = {}

    def entry(self, spec: StreamSpec, path: str | os.PathLike) -> Path:
        """Where stream ``spec``'s frames of ``path`` are (or would be) stored."""
        return self.root / stream_key(spec) / f"{file_key(Path(path))}.npy"

    def compute(
        self, path: str | os.PathLike, streams: Sequence[StreamSpec] | None = None
    ) -> dict[str, np.ndarray]:
        """Decode and extract (all streams, or ``streams``) without touching the cache."""
        streams = list(streams or self.streams)
        names = tuple(s.name for s in streams)
        if names not in self._frontends:
            self._frontends[names] = StreamFrontEnd(streams)
        wave = torch.from_numpy(load_audio(path, self.sample_rate))
        with torch.no_grad():
            frames = self._frontends[names](wave[None], torch.tensor([wave.numel()]))
        return {name: array[0].numpy() for name, (array, _) in frames.items()}

    def get(self, path: str | os.PathLike) -> dict[str, np.ndarray]:
        """Cached frames of ``path``; missing streams are computed (one decode) and stored."""
        entries = {s.name: self.entry(s, path) for s in self.streams}
        missing = [s for s in self.streams if not entries[s.name].exists()]
        computed = self.compute(path, missing) if missing else {}
        for name, values in computed.items():
            _save_array(entries[name], values)
        return {s.name: computed[s.name] if s.name in computed else np.load(entries[s.name])
                for s in self.streams}  # fmt: skip

    def get_many(
        self, paths: Sequence[str | os.PathLike], progress: bool = False
    ) -> list[dict[str, np.ndarray]]:
        """Frames of many files, in order, with an optional progress bar."""
        if progress:
            from tqdm import tqdm

            paths = tqdm(paths, desc="features", unit="file", leave=False)
        return [self.get(p) for p in paths]
