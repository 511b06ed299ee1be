"""Feature files: a model's features and eGeMAPS functionals of audio files, saved for other tools.

Each input gets one file per feature, ``<name>.<feature>.npy`` (float32, (T, dims): one row per
frame, like openSMILE's low-level descriptors) or ``<name>.<feature>.csv`` (a header row
``frame_time,<feature>_0,<feature>_1,...``; ``frame_time`` is frame t's time, t / frame rate, in
seconds). ``<name>`` is the file's stem; inputs sharing a stem get their parent folders in front,
joined by ``__`` (:func:`output_names`). eGeMAPS functionals go to one ``egemaps.csv``, a row per
file. Every file is written atomically as soon as it is computed, and a bad input is reported
through ``on_error`` while the others go on.

The frames are the raw, unnormalised ones the model reads (:class:`FeatureFrontEnd`), the same as
:meth:`emofuse.pipeline.cache.FeatureCache.compute`.

>>> output_names(["a/x.wav", "b/x.wav", "b/y.wav"])
{'a/x.wav': 'a__x', 'b/x.wav': 'b__x', 'b/y.wav': 'y'}
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from emofuse.features import FeatureFrontEnd, FeatureSpec, make_kind
from emofuse.files import atomic_path

__all__ = [
    "FORMATS",
    "SavedFeatures",
    "frontend_for",
    "iter_frames",
    "output_names",
    "save_features",
]

FORMATS = ("npy", "csv")
OnError = Callable[[str, Exception], None]


def frontend_for(
    *, model: str | os.PathLike | None = None, config: str | os.PathLike | None = None
) -> FeatureFrontEnd:
    """The front end of a model (``accurate``, ``fast`` or a model file; its pretrained weights
    come from the model file), or of an experiment YAML's features; neither: the default features
    (MFCC and log-Mel)."""
    if model is not None and config is not None:
        raise ValueError("give --model or --config, not both")
    if model is not None:
        from emofuse.pipeline import load_model

        return load_model(model).frontend
    from emofuse.config import load_config

    return FeatureFrontEnd(load_config(config).features)


def _frames(frontend: FeatureFrontEnd, path: str) -> dict[str, np.ndarray]:
    """``{feature: (dims, T) float32}`` of the whole file; ValueError for non-finite frames."""
    from emofuse.signal.audio import load_audio

    wave = torch.from_numpy(load_audio(path, frontend.sample_rate))
    with torch.no_grad():
        frames = frontend(wave[None], torch.tensor([wave.numel()]))
    out = {name: array[0].numpy().astype(np.float32, copy=False)
           for name, (array, _) in frames.items()}  # fmt: skip
    for name, values in out.items():
        if values.shape[-1] == 0:
            raise ValueError(f"{path}: too short for a single {name} frame")
        if not np.isfinite(values).all():
            raise ValueError(f"{path}: non-finite {name} frames (NaN or infinity)")
    return out


def iter_frames(
    paths: Iterable[str | os.PathLike],
    frontend: FeatureFrontEnd,
    *,
    on_error: OnError | None = None,
) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """``(path, {feature: (dims, T)})`` per readable file, in order. A file that fails goes to
    ``on_error(path, error)`` and is skipped; without ``on_error`` the error is raised."""
    for path in map(str, paths):
        try:
            yield path, _frames(frontend, path)
        except ValueError as error:  # AudioError included; its message names the file
            if on_error is None:
                raise
            on_error(path, error)


def output_names(paths: Sequence[str | os.PathLike]) -> dict[str, str]:
    """Output name of each input (repeats of one file dropped): its stem, unless another input
    has that stem (ignoring case); then its parent folders in front (``a/x.wav`` -> ``a__x``),
    as many as make the names distinct, and at last its suffix (``x.wav``, ``x.flac`` ->
    ``x_wav``, ``x_flac``)."""
    unique: dict[str, str] = {}  # absolute path -> the path as given first
    for path in map(str, paths):
        unique.setdefault(os.path.abspath(path), path)
    folders = {given: Path(absolute).parts[1:-1] for absolute, given in unique.items()}

    def name(path: str, step: int) -> str:
        """Step 0, 1, ...: stem, one folder more each step; past the root: stem and suffix,
        again with one folder more each step."""
        depth = step % (len(folders[path]) + 1)
        base = "__".join((*folders[path][len(folders[path]) - depth :], Path(path).stem))
        return base if step == depth else f"{base}_{Path(path).suffix.lstrip('.')}"

    names: dict[str, str] = {}
    pending, step = list(unique.values()), 0
    while pending:
        candidates = {p: name(p, step) for p in pending}
        taken = [n.lower() for n in (*candidates.values(), *names.values())]
        pending = []
        for path, candidate in candidates.items():
            if taken.count(candidate.lower()) == 1 or step >= 2 * len(folders[path]) + 1:
                names[path] = candidate
            else:
                pending.append(path)
        step += 1
    return {p: names[p] for p in unique.values()}


@dataclass
class SavedFeatures:
    """What :func:`save_features` did: input -> written files, the inputs that failed, and the
    eGeMAPS table (``None`` when not asked for)."""

    written: dict[str, list[Path]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    egemaps: Path | None = None


def _write_npy(path: Path, frames: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, np.ascontiguousarray(frames.T, dtype=np.float32))  # (T, dims)


def _write_csv(path: Path, frames: np.ndarray, feature: str, frame_rate: float) -> None:
    dims, steps = frames.shape
    table = np.column_stack([np.arange(steps) / frame_rate, frames.T.astype(np.float64)])
    header = ",".join(["frame_time", *(f"{feature}_{i}" for i in range(dims))])
    with atomic_path(path) as tmp:
        np.savetxt(tmp, table, fmt="%.9g", delimiter=",", header=header, comments="")


def save_features(
    paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    frontend: FeatureFrontEnd | Sequence[FeatureSpec] | None = None,
    fmt: str = "npy",
    egemaps: bool = False,
    on_error: OnError | None = None,
) -> SavedFeatures:
    """Write every feature of every file in ``paths`` to ``out_dir`` (module docstring), and with
    ``egemaps`` the 88 eGeMAPSv02 functionals of each to ``out_dir/egemaps.csv`` (needs
    ``opensmile``). ``frontend``: a front end, feature specs, or ``None`` for the default features.
    A bad file goes to ``on_error(path, error)`` (without it, the error is raised) and the
    others go on; ``egemaps.csv`` holds the files done even when the run stops early."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown feature file format {fmt!r}; known: {', '.join(FORMATS)}")
    if frontend is None:
        frontend = frontend_for()
    elif not isinstance(frontend, FeatureFrontEnd):
        frontend = FeatureFrontEnd(frontend)
    columns: list[str] = []
    if egemaps:
        from emofuse.experiments.baseline import egemaps_extractor

        columns = list(egemaps_extractor().feature_names)  # ImportError naming emofuse[baseline]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rates = {spec.name: make_kind(spec).frame_rate for spec in frontend.specs}
    names = output_names(paths)
    summary = SavedFeatures()
    rows: list[list[object]] = []

    def failed(path: str, error: Exception) -> None:
        summary.failed.append(path)
        if on_error is None:
            raise error
        on_error(path, error)

    try:
        for path, frames in iter_frames(names, frontend, on_error=failed):
            written = []
            for feature, values in frames.items():
                target = out / f"{names[path]}.{feature}.{fmt}"
                if fmt == "npy":
                    _write_npy(target, values)
                else:
                    _write_csv(target, values, feature, rates[feature])
                written.append(target)
            summary.written[path] = written
            if egemaps:
                try:
                    rows.append([path, *_functionals(path)])
                except ValueError as error:
                    failed(path, error)
    finally:
        if egemaps:
            summary.egemaps = out / "egemaps.csv"
            with atomic_path(summary.egemaps) as tmp, open(tmp, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["file", *columns])
                writer.writerows([row[0], *(f"{v:.9g}" for v in row[1:])] for row in rows)
    return summary


def _functionals(path: str) -> np.ndarray:
    """The 88 eGeMAPSv02 functionals of one file (the baseline's extraction and cache)."""
    from emofuse.corpora import Utterance
    from emofuse.experiments.baseline import egemaps_features

    utterance = Utterance(Path(path).stem, Path(path), None, "", None, None, "files")
    values = egemaps_features([utterance])[str(Path(path))]
    if not np.isfinite(values).all():
        raise ValueError(f"{path}: non-finite eGeMAPS functionals")
    return values
