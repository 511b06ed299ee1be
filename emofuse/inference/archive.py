"""Archive-scale prediction on Ray Data: the library behind ``emofuse predict --ray``.

Millions of files, one row each, on a laptop or a cluster. The paths still to do become a
Ray dataset; ``map_batches`` hands batches of paths to a pool of :class:`ArchivePredictor`
actors (each loads the model once and predicts with
:meth:`~emofuse.inference.recognizer.EmotionRecognizer.predict_many`, so a row equals the
single-process answer); the driver writes the results as they arrive.

Output: a FOLDER of parquet parts (``part-00000.parquet``, ``part-00001.parquet``, ...) that
pandas, pyarrow, polars and Ray read as one table, one row per file:

    path (absolute), label, confidence, p_<label> (one per class; null without speech),
    duration (s), speech (bool), reason (why no emotion), error (null, or why the file
    could not be read: such a file gets a row and the job goes on)

A part is written to a hidden ``.part-NNNNN.parquet.tmp`` (ignored by every reader), synced and
renamed, so a killed run keeps every finished part and never leaves half a part. Running again
resumes: the paths already in the parts (answered or failed) are skipped and new parts are
numbered after the old ones. ``_settings.json`` beside the parts records the model, precision
and voice activity setting; a resume with other settings is refused, so one folder never mixes
models. One run at a time per folder.

Ray is an optional extra (``pip install 'emofuse[ray]'``) imported only here, inside functions.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "list.txt").write_text("a.wav\\n\\nsub/b.flac\\n/data/c.wav\\n")
>>> [p.removeprefix(str(folder)) for p in list_inputs(folder / "list.txt")]
['/a.wav', '/sub/b.flac', '/data/c.wav']
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from emofuse.files import AUDIO_SUFFIXES, find_audio_files, write_json
from emofuse.inference.recognizer import EmotionRecognizer, Prediction
from emofuse.pipeline.modelfile import BUNDLED_MODELS

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ArchiveError", "ArchivePredictor", "list_inputs", "predict_archive", "ray_session"]

MANIFEST_SUFFIXES = (".txt", ".csv", ".parquet")
PART = re.compile(r"part-(\d+)\.parquet")
PART_SECONDS = 60.0  # a part is written at least this often while results arrive
SETTINGS = "_settings.json"
INSTALL_HINT = "Ray Data is not installed: pip install 'emofuse[ray]'"


class ArchiveError(ValueError):
    """A bad input folder or manifest, or an output folder that cannot be resumed."""


def list_inputs(source: str | os.PathLike) -> list[str]:
    """The audio files of a folder (searched recursively, sorted), of a manifest or a single
    audio file, as absolute paths, each once, in order.

    Manifests: ``.txt`` (one path a line, blank lines skipped), ``.csv`` or ``.parquet`` (a
    ``path`` column). Relative paths in a manifest are taken from the manifest's folder.

    Raises:
        ArchiveError: no such source, an unknown manifest format, no ``path`` column, or no
            files at all; the message names the source.
    """
    source = Path(source)
    if source.is_dir():
        files = find_audio_files([os.path.abspath(source)])
        if not files:
            raise ArchiveError(f"{source}: no audio files in this folder")
        return files
    if not source.is_file():
        raise ArchiveError(f"{source}: no such folder or manifest")
    suffix = source.suffix.lower()
    if suffix in AUDIO_SUFFIXES:
        return [os.path.abspath(source)]
    if suffix not in MANIFEST_SUFFIXES:
        raise ArchiveError(f"{source}: unknown manifest format {suffix!r}; expected a folder, a "
                           ".txt (a path a line), .csv or .parquet (a 'path' column)")  # fmt: skip
    entries = _manifest_entries(source, suffix)
    folder = os.path.abspath(source.parent)
    files = list(dict.fromkeys(os.path.abspath(os.path.join(folder, e)) for e in entries if e))
    if not files:
        raise ArchiveError(f"{source}: the manifest lists no files")
    return files


def _manifest_entries(manifest: Path, suffix: str) -> list[str]:
    """The raw path entries of a ``.txt``, ``.csv`` or ``.parquet`` manifest."""
    if suffix == ".txt":
        return [line.strip() for line in manifest.read_text(encoding="utf-8").splitlines()]
    if suffix == ".csv":
        with open(manifest, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            if "path" not in columns:
                raise ArchiveError(f"{manifest}: no 'path' column (columns: {columns})")
            return [row["path"] or "" for row in reader]
    import pyarrow.parquet as pq

    columns = pq.read_schema(manifest).names
    if "path" not in columns:
        raise ArchiveError(f"{manifest}: no 'path' column (columns: {columns})")
    return [e or "" for e in pq.read_table(manifest, columns=["path"])["path"].to_pylist()]


def _ray():
    """The ``ray`` module with Ray Data, or an ImportError that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return ray


@contextlib.contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[None]:
    """Ray for the duration of the block. An already initialised Ray is used as it is;
    otherwise ``address`` None starts a local Ray (on ``num_cpus`` CPUs, default all; no
    dashboard, worker logs not forwarded) and ``"auto"``, ``"ray://HOST:PORT"`` or
    ``"HOST:PORT"`` connects to a running cluster. Ray is shut down on exit only if it was
    started or connected here."""
    ray = _ray()
    if ray.is_initialized():
        yield
        return
    if address is None:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    elif num_cpus is not None:
        raise ValueError("num_cpus is for a local Ray; a cluster has its own CPUs")
    else:
        ray.init(address=address)
    try:
        yield
    finally:
        ray.shutdown()


class ArchivePredictor:
    """One Ray actor: loads the model once, then turns batches of paths into result tables.

    ``model``: ``accurate``, ``fast``, a model file or an ``.onnx`` export; a file must be at
    the same path on every node. Runs on the CPU with ``threads`` torch (or onnxruntime)
    threads; ``batch_size`` is :meth:`EmotionRecognizer.predict_many`'s.
    """

    def __init__(
        self,
        *,
        model: str,
        backend: str = "auto",
        threads: int = 1,
        precision: str = "auto",
        vad: bool = True,
        batch_size: int | None = None,
    ) -> None:
        import torch

        torch.set_num_threads(threads)
        self.recognizer = EmotionRecognizer.load(
            model, backend=backend, device="cpu", threads=threads, precision=precision, vad=vad
        )
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        """``{"path": (N,) str}`` -> a table of N rows (:func:`result_table`), in order."""
        paths = [str(p) for p in batch["path"]]
        errors: dict[str, str] = {}
        predictions = self.recognizer.predict_many(
            paths,
            batch_size=self.batch_size,
            on_error=lambda path, error: errors.__setitem__(str(path), str(error)),
        )
        return result_table(paths, predictions, errors, self.recognizer.labels)


def result_table(
    paths: Sequence[str],
    predictions: Sequence[Prediction | None],
    errors: dict[str, str],
    labels: Sequence[str],
) -> pa.Table:
    """One row per path: its prediction, or (for None) its message in ``errors``."""
    import pyarrow as pa

    def column(get: Callable[[Prediction], object]) -> list:
        return [None if p is None else get(p) for p in predictions]

    probabilities = {
        f"p_{label}": column(lambda p, label=label: p.probabilities.get(label)) for label in labels
    }
    columns = {
        "path": list(paths),
        "label": column(lambda p: p.label),
        "confidence": column(lambda p: p.confidence),
        **probabilities,
        "duration": column(lambda p: p.duration),
        "speech": column(lambda p: not p.silent),
        "reason": column(lambda p: p.reason),
        "error": [errors.get(path) for path in paths],
    }
    types = {"confidence": pa.float64(), **dict.fromkeys(probabilities, pa.float64()),
             "duration": pa.float64(), "speech": pa.bool_()}  # fmt: skip
    return pa.table(columns, schema=pa.schema([(k, types.get(k, pa.string())) for k in columns]))


def _parts(out: Path) -> list[Path]:
    """The finished parts of an output folder, in number order."""
    found = [p for p in out.glob("part-*.parquet") if PART.fullmatch(p.name)]
    return sorted(found, key=lambda p: int(PART.fullmatch(p.name)[1]))


def _write_part(table: pa.Table, out: Path, number: int) -> None:
    """``table`` -> ``out/part-NNNNN.parquet``, via a hidden temporary file, synced, renamed."""
    import pyarrow.parquet as pq

    part = out / f"part-{number:05d}.parquet"
    tmp = out / f".{part.name}.tmp"
    with open(tmp, "wb") as f:
        pq.write_table(table, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, part)


class _Output(NamedTuple):
    """What an output folder already holds: the paths answered, and the next part's number."""

    done: set[str]
    next_part: int


def _prepare_output(out: Path, settings: dict) -> _Output:
    """Create or check the output folder: what it already holds.

    Raises:
        ArchiveError: ``out`` is a file, or holds predictions made with other ``settings``.
    """
    import pyarrow.parquet as pq

    if out.exists() and not out.is_dir():
        raise ArchiveError(f"{out} is a file; the output is a folder of parquet parts")
    out.mkdir(parents=True, exist_ok=True)
    for leftover in out.glob(".part-*.parquet.tmp"):  # from a killed run
        leftover.unlink()
    recorded = out / SETTINGS
    if recorded.exists():
        before = json.loads(recorded.read_text())
        if before != settings:
            raise ArchiveError(f"{out} holds predictions made with {before}, not {settings}: "
                               "write to another folder")  # fmt: skip
    else:
        write_json(settings, recorded)
    parts = _parts(out)
    done = {p for part in parts for p in pq.read_table(part, columns=["path"])["path"].to_pylist()}
    following = int(PART.fullmatch(parts[-1].name)[1]) + 1 if parts else 0
    return _Output(done, following)


def _model_name(model: str | os.PathLike) -> str:
    """A bundled model's name as it is; a model file as an absolute path (Ray workers may run
    in another folder or on another node)."""
    if str(model) in BUNDLED_MODELS and not Path(model).exists():
        return str(model)
    return os.path.abspath(model)


def predict_archive(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    model: str | os.PathLike = "accurate",
    backend: str = "auto",
    address: str | None = None,
    workers: int | None = None,
    threads_per_worker: int = 1,
    files_per_batch: int = 64,
    batch_size: int | None = None,
    precision: str = "auto",
    vad: bool = True,
    part_rows: int = 1000,
    progress: bool = True,
) -> dict:
    """Predict every file of ``source`` (a folder or manifest, :func:`list_inputs`) not yet in
    ``out`` (a folder of parquet parts; module docstring) on Ray; the new rows are appended.

    ``address``: None for a local Ray (or the one already initialised; :func:`ray_session`),
    else a cluster's. ``workers``: model actors, ``threads_per_worker`` CPUs each (default: as
    many as the cluster's CPUs hold when the job starts). ``files_per_batch``: paths handed to
    an actor at a time. ``batch_size``: audio per forward pass, as in
    :meth:`EmotionRecognizer.predict_many`. A part is written every ``part_rows`` rows or
    ``PART_SECONDS`` seconds, whichever comes first. ``progress``: Ray Data's progress bars.

    Returns:
        ``{"total", "done_before", "predicted", "errors", "seconds", "out", "precision"}``:
        files in ``source``, already in ``out``, answered now, failed now (recorded, not
        retried); the precision every worker ran in (``auto`` decided on this machine).

    Raises:
        ArchiveError: a bad source or output folder. ModelFileError: a bad model file.
        ImportError: Ray Data is not installed.
    """
    for name, value in (("threads_per_worker", threads_per_worker), ("part_rows", part_rows),
                        ("files_per_batch", files_per_batch), ("workers", workers),
                        ("batch_size", batch_size)):  # fmt: skip
        if value is not None and value < 1:
            raise ValueError(f"{name} must be positive, got {value}")
    _ray()  # the install hint before any work (Ray Data brings pyarrow too)
    started = time.monotonic()
    files = list_inputs(source)
    model = _model_name(model)
    # A bad model or setting fails here with its own message, not in every worker; ``auto`` is
    # decided here, so every worker of a cluster runs in one precision.
    checked = EmotionRecognizer.load(model, backend=backend, device="cpu", precision=precision,
                                     vad=False)  # fmt: skip
    precision = checked.backend.precision_choice.used
    out = Path(out)
    done, number = _prepare_output(out, {"model": model, "precision": precision, "vad": vad})
    todo = [path for path in files if path not in done]
    summary = {"total": len(files), "done_before": len(files) - len(todo), "predicted": 0,
               "errors": 0, "seconds": 0.0, "out": str(out), "precision": precision}  # fmt: skip
    if todo:
        predictor = {"model": model, "backend": backend, "threads": threads_per_worker,
                     "precision": precision, "vad": vad, "batch_size": batch_size}  # fmt: skip
        with ray_session(address):
            tables = _predict_on_ray(todo, predictor, workers, files_per_batch, progress)
            for table in _parted(tables, part_rows):
                _write_part(table, out, number)
                number += 1
                failed = table.num_rows - table["error"].null_count
                summary["predicted"] += table.num_rows - failed
                summary["errors"] += failed
    summary["seconds"] = round(time.monotonic() - started, 3)
    return summary


def _predict_on_ray(
    paths: list[str], predictor: dict, workers: int | None, files_per_batch: int, progress: bool
) -> Iterator[pa.Table]:
    """Result tables (:func:`result_table`) of ``paths``, as Ray's actors finish them, in no
    particular order. One dataset block per batch, so the batches spread over the actors."""
    ray = _ray()
    batches = -(-len(paths) // files_per_batch)
    threads = predictor["threads"]
    if workers is None:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
    context = ray.data.DataContext.get_current()
    bars, context.enable_progress_bars = context.enable_progress_bars, progress
    try:
        items = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=batches)
        results = items.map_batches(
            ArchivePredictor,
            fn_constructor_kwargs=predictor,
            batch_size=files_per_batch,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=min(workers, batches)),
            num_cpus=threads,
        )
        yield from results.iter_batches(batch_size=None, batch_format="pyarrow")
    finally:
        context.enable_progress_bars = bars


def _parted(tables: Iterator[pa.Table], rows: int) -> Iterator[pa.Table]:
    """Result tables as they arrive -> tables of about ``rows`` rows, or what arrived in
    ``PART_SECONDS``; the rest at the end."""
    import pyarrow as pa

    pending: list[pa.Table] = []
    size, since = 0, time.monotonic()
    for table in tables:
        if not table.num_rows:
            continue
        pending.append(table)
        size += table.num_rows
        if size >= rows or time.monotonic() - since >= PART_SECONDS:
            yield pa.concat_tables(pending)
            pending, size, since = [], 0, time.monotonic()
    if pending:
        yield pa.concat_tables(pending)
