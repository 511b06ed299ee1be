"""On-disk cache of raw (unnormalised) feature frames, one folder per feature kind and settings
(per layer for a Whisper feature: :meth:`~emofuse.features.FeatureKind.cache_parts`).

An entry's name hashes the audio file's resolved path, size and modification time, and its
folder hashes the feature's kind and settings (not its name), so an edited file or changed
settings never read a stale entry, and adding a feature never recomputes the others. Entries are
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

from emofuse.features import FeatureFrontEnd, FeatureSpec, check_features, make_kind
from emofuse.files import atomic_path
from emofuse.progress import progress as progress_of
from emofuse.signal.audio import load_audio

__all__ = ["FeatureCache", "cached_array", "default_cache_dir", "file_key"]

CACHE_VERSION = 2


def default_cache_dir() -> Path:
    """``$EMOFUSE_CACHE``, else ``$XDG_CACHE_HOME/emofuse/features`` (``~/.cache`` by default)."""
    if "EMOFUSE_CACHE" in os.environ:
        return Path(os.environ["EMOFUSE_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "emofuse" / "features"


def feature_key(kind: str, settings: dict) -> str:
    """Folder name of a feature part's entries: its kind and a hash of its settings."""
    text = json.dumps({"version": CACHE_VERSION, "kind": kind, **settings}, sort_keys=True)
    return f"{kind}-{hashlib.sha1(text.encode()).hexdigest()[:16]}"


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


def _joined(entries: list[tuple[Path, slice]]) -> np.ndarray:
    """A feature's frames from its cached parts, rows in order."""
    parts = [np.load(entry) for entry, _ in entries]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


class FeatureCache:
    """Raw frames of whole files, ``{feature name: (dims, frames) float32}``, for ``features``."""

    def __init__(
        self,
        features: Sequence[FeatureSpec],
        root: str | os.PathLike | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        """``device``: where missing frames are computed (e.g. a frozen encoder on CUDA)."""
        self.features = check_features(features)
        self.root = Path(root or default_cache_dir())
        self.device = torch.device(device)
        self.sample_rate = make_kind(self.features[0]).sample_rate
        self._frontends: dict[tuple[str, ...], FeatureFrontEnd] = {}

    def entries(self, spec: FeatureSpec, path: str | os.PathLike) -> list[tuple[Path, slice]]:
        """Where feature ``spec``'s frames of ``path`` are (or would be) stored: one entry per
        cache part, with the rows it holds."""
        name = f"{file_key(Path(path))}.npy"
        return [(self.root / feature_key(spec.kind, settings) / name, rows)
                for settings, rows in make_kind(spec).cache_parts()]  # fmt: skip

    def compute(
        self, path: str | os.PathLike, features: Sequence[FeatureSpec] | None = None
    ) -> dict[str, np.ndarray]:
        """Decode and extract (all features, or ``features``) without touching the cache."""
        features = list(features or self.features)
        names = tuple(s.name for s in features)
        if names not in self._frontends:
            self._frontends[names] = FeatureFrontEnd(features).to(self.device)
        wave = torch.from_numpy(load_audio(path, self.sample_rate)).to(self.device)
        lengths = torch.tensor([wave.numel()], device=self.device)
        with torch.no_grad():
            frames = self._frontends[names](wave[None], lengths)
        return {name: array[0].cpu().numpy() for name, (array, _) in frames.items()}

    def get(self, path: str | os.PathLike) -> dict[str, np.ndarray]:
        """Cached frames of ``path``; missing features are computed (one decode) and stored."""
        entries = {s.name: self.entries(s, path) for s in self.features}
        missing = [s for s in self.features
                   if not all(entry.exists() for entry, _ in entries[s.name])]  # fmt: skip
        computed = self.compute(path, missing) if missing else {}
        for name, values in computed.items():
            for entry, rows in entries[name]:
                if not entry.exists():
                    _save_array(entry, np.ascontiguousarray(values[rows]))
        return {s.name: computed[s.name] if s.name in computed else _joined(entries[s.name])
                for s in self.features}  # fmt: skip

    def get_many(
        self, paths: Sequence[str | os.PathLike], progress: bool = False
    ) -> list[dict[str, np.ndarray]]:
        """Frames of many files, in order, with an optional progress bar."""
        return [self.get(p) for p in (progress_of(paths, "features") if progress else paths)]
