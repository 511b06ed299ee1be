"""Files: atomic writes (a killed run never leaves a half-written file) and the audio-file finder.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> write_json({"ua": 0.5}, folder / "a.json"); (folder / "a.json").read_text()
'{\\n "ua": 0.5\\n}'
>>> with atomic_path(folder / "b.txt") as tmp:
...     _ = tmp.write_text("done")
>>> sorted(p.name for p in folder.iterdir())
['a.json', 'b.txt']
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["atomic_path", "write_text", "write_json", "AUDIO_SUFFIXES", "find_audio_files"]

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on an error
    remove it (``path`` keeps its old content). Parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(data: object, path: str | os.PathLike) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=1))


def find_audio_files(inputs: Iterable[str | os.PathLike]) -> list[str]:
    """Files as given; folders replaced by the audio files below them (sorted, recursive)."""
    found: list[str] = []
    for item in inputs:
        if os.path.isdir(item):
            found += sorted(
                str(p)
                for p in Path(item).rglob("*")
                if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
            )
        else:
            found.append(str(item))
    return found
