"""On-disk cache of raw (unnormalised) features, keyed by file identity and FeatureConfig.

An entry's name hashes the audio file's resolved path, size and modification time, and its
folder hashes the feature settings, so an edited file or a changed config never reads a stale
entry. Entries are written atomically: a killed run leaves no half-written file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from emofuse.signal.audio import load_audio
from emofuse.signal.transforms import FeatureConfig, FeatureExtractor

__all__ = ["FeatureCache", "cached_array", "default_cache_dir", "file_key"]

CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """``$EMOFUSE_CACHE``, else ``$XDG_CACHE_HOME/emofuse/features`` (``~/.cache`` by default)."""
    if "EMOFUSE_CACHE" in os.environ:
        return Path(os.environ["EMOFUSE_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "emofuse" / "features"


def _config_key(config: FeatureConfig) -> str:
    text = json.dumps({"version": CACHE_VERSION, **config.to_dict()}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


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
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_name(f"{entry.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, values)
    os.replace(tmp, entry)
    return values


class FeatureCache:
    """Raw features of whole files, ``(config.n_rows, frames)`` float32: MFCC rows first, then
    log-Mel, then prosody (see :meth:`emofuse.signal.transforms.FeatureExtractor.rows`)."""

    def __init__(self, config: FeatureConfig, root: str | os.PathLike | None = None) -> None:
        self.config = config
        self.folder = Path(root or default_cache_dir()) / _config_key(config)
        self.extractor = FeatureExtractor(config)

    def entry(self, path: str | os.PathLike) -> Path:
        """Where the features of ``path`` are (or would be) stored."""
        return self.folder / f"{file_key(Path(path))}.npy"

    @torch.no_grad()
    def compute(self, path: str | os.PathLike) -> np.ndarray:
        """Decode and extract without touching the cache."""
        wave = torch.from_numpy(load_audio(path, self.config.sample_rate))
        rows, _ = self.extractor.rows(wave[None], torch.tensor([wave.numel()]))
        return rows[0].numpy()

    def get(self, path: str | os.PathLike) -> np.ndarray:
        """Cached features of ``path``, computed and stored on a miss."""
        return cached_array(self.entry(path), lambda: self.compute(path))

    def get_many(
        self, paths: Sequence[str | os.PathLike], progress: bool = False
    ) -> list[np.ndarray]:
        """Features of many files, in order, with an optional progress bar."""
        if progress:
            from tqdm import tqdm

            paths = tqdm(paths, desc="features", unit="file", leave=False)
        return [self.get(p) for p in paths]
