"""Archive-scale prediction on a local Ray (:mod:`emofuse.inference.archive`, ``emofuse predict
--ray``): the parquet rows equal :meth:`EmotionRecognizer.predict_many`'s, a bad file gets an
error row and the others are unaffected, a second run resumes. The manifest tests need no Ray.

One local Ray (2 CPUs, started once for the module, about 10 s) runs the ``fast`` model on the
four ``examples/*.flac`` clips, a silent clip and a text file named ``.wav``.
"""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emofuse.cli import main
from emofuse.inference.archive import ArchiveError, list_inputs, predict_archive, ray_session
from emofuse.inference.recognizer import EmotionRecognizer

EXAMPLES = sorted(Path(__file__).resolve().parents[1].glob("examples/*.flac"))
# float32: bfloat16 answers move in the last digits with the batching
RUN = {"model": "fast", "files_per_batch": 2, "part_rows": 2, "progress": False,
       "precision": "fp32"}  # fmt: skip


@pytest.fixture(scope="module")
def ray_cluster():
    pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install 'emofuse[ray]'")
    with ray_session(num_cpus=2):
        yield


@pytest.fixture(scope="module")
def recognizer() -> EmotionRecognizer:
    return EmotionRecognizer.load("fast", precision="fp32")


@pytest.fixture
def clips(tmp_path) -> Path:
    """clips/: the example clips (one in a sub-folder), a second of silence, a broken file."""
    folder = tmp_path / "clips"
    (folder / "sub").mkdir(parents=True)
    for i, clip in enumerate(EXAMPLES):
        shutil.copy(clip, folder / ("sub" if i == 0 else "") / clip.name)
    sf.write(folder / "silence.wav", np.zeros(16000, np.float32), 16000)
    (folder / "broken.wav").write_text("not audio")
    return folder


def read_rows(out: Path) -> dict[str, dict]:
    """The output folder as one table, by path; no path twice."""
    import pyarrow.parquet as pq

    rows = pq.read_table(out).to_pylist()
    by_path = {row["path"]: row for row in rows}
    assert len(by_path) == len(rows), "a path is in the output twice"
    return by_path


def assert_single_process(rows: dict[str, dict], recognizer: EmotionRecognizer) -> None:
    """Every readable file's row equals ``predict_many``'s answer for it."""
    paths = [path for path, row in rows.items() if row["error"] is None]
    for path, prediction in zip(paths, recognizer.predict_many(paths), strict=True):
        row = rows[path]
        assert row["label"] == prediction.label, path
        assert row["speech"] == (not prediction.silent) and row["reason"] == prediction.reason
        assert row["duration"] == pytest.approx(prediction.duration)
        assert row["confidence"] == pytest.approx(prediction.confidence, abs=1e-5)
        for label in recognizer.labels:
            if prediction.silent:
                assert row[f"p_{label}"] is None
            else:
                assert row[f"p_{label}"] == pytest.approx(prediction.probabilities[label], abs=1e-5)


def test_predictions_equal_single_process_and_resume(ray_cluster, recognizer, clips, tmp_path):
    out = tmp_path / "predictions.parquet"
    summary = predict_archive(clips, out, workers=2, threads_per_worker=1, **RUN)
    assert (summary["total"], summary["done_before"]) == (6, 0)
    assert (summary["predicted"], summary["errors"]) == (5, 1)
    rows = read_rows(out)
    assert sorted(rows) == list_inputs(clips)
    broken = rows[str(clips / "broken.wav")]
    assert str(clips / "broken.wav") in broken["error"] and broken["label"] is None
    silence = rows[str(clips / "silence.wav")]
    assert silence["speech"] is False and silence["reason"].startswith("silent")
    assert_single_process(rows, recognizer)
    parts = sorted(out.glob("part-*.parquet"))
    assert len(parts) >= 2

    # A second run predicts nothing; the broken file is not retried.
    again = predict_archive(clips, out, workers=2, **RUN)
    assert (again["done_before"], again["predicted"], again["errors"]) == (6, 0, 0)
    assert sorted(out.glob("part-*.parquet")) == parts

    # A lost part, a new file and a half-written part of a killed run: only the missing rows
    # are predicted, into parts numbered after the old ones.
    lost = set(read_rows(parts[0]))
    parts[0].unlink()
    shutil.copy(EXAMPLES[1], clips / "sub" / "copy.flac")
    (out / ".part-00099.parquet.tmp").write_bytes(b"PAR1 cut short")
    resumed = predict_archive(clips, out, workers=1, **RUN)
    new_rows = len(lost) + 1
    assert (resumed["total"], resumed["done_before"]) == (7, 7 - new_rows)
    assert resumed["predicted"] + resumed["errors"] == new_rows
    assert not list(out.glob(".*.tmp"))
    assert min(out.glob("part-*.parquet")).name == parts[1].name
    rows = read_rows(out)
    assert sorted(rows) == list_inputs(clips)
    assert_single_process(rows, recognizer)

    # The folder holds the fast model's predictions: no run with another model adds to it.
    with pytest.raises(ArchiveError, match="another folder"):
        predict_archive(clips, out, **{**RUN, "model": "accurate"})


def test_cli_with_a_manifest(ray_cluster, recognizer, clips, tmp_path, capsys):
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "speaker"])
        writer.writerows([["clips/broken.wav", "x"], [str(clips / EXAMPLES[2].name), "y"]])
    out = tmp_path / "out.parquet"
    argv = ["archive", str(manifest), "--output", str(out), "--model", "fast",
            "--precision", "fp32"]  # fmt: skip
    status = main([*argv, "--workers", "1"])
    captured = capsys.readouterr()
    assert status == 1 and "Traceback" not in captured.err  # the broken file failed
    assert captured.out.startswith(f"{out}: 1 files predicted, 1 failed (see the error column)")
    assert captured.out.rstrip().endswith("(fp32)")  # the precision every worker ran in
    rows = read_rows(out)
    assert sorted(rows) == [str(clips / "broken.wav"), str(clips / EXAMPLES[2].name)]
    assert_single_process(rows, recognizer)
    assert main(argv) == 0 and "0 files predicted, 0 failed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--ray", "--out", "x", "--format", "csv"], "--ray does not combine with --format"),
        (["--ray", "--out", "x", "--timeline"], "--ray does not combine with --timeline"),
        (["--ray"], "--ray needs --out"),
        (["--out", "x.parquet"], "--out and --ray-workers are for --ray"),
        (["--ray-workers", "2"], "--out and --ray-workers are for --ray"),
        (["another", "--ray", "--out", "x"], "one folder or manifest, got 2"),
    ],
)
def test_cli_refuses(options, message, tmp_path, capsys):
    assert main(["predict", str(tmp_path), *options]) == 1
    assert message in capsys.readouterr().err


def test_cli_address_is_not_a_folder(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--ray", str(tmp_path), "--out", "x"])
    assert "not a Ray address" in capsys.readouterr().err


def test_without_ray_says_how_to_install(monkeypatch, clips, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'emofuse\[ray\]'"):
        predict_archive(clips, tmp_path / "out", **RUN)


def test_manifests(tmp_path):
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "a.txt").write_text("x.wav\n\n  sub/y.flac\n/abs/z.wav\nx.wav\n")
    expected = [str(tmp_path / "lists" / "x.wav"), str(tmp_path / "lists/sub/y.flac"), "/abs/z.wav"]
    assert list_inputs(tmp_path / "lists" / "a.txt") == expected
    (tmp_path / "lists" / "a.csv").write_text(
        "\ufeffspeaker,path\n1,x.wav\n2,sub/y.flac\n3,/abs/z.wav\n", encoding="utf-8"
    )
    assert list_inputs(tmp_path / "lists" / "a.csv") == expected
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"path": ["x.wav", "sub/y.flac", "/abs/z.wav"]})
    pq.write_table(table, tmp_path / "lists" / "a.parquet")
    assert list_inputs(tmp_path / "lists" / "a.parquet") == expected


def test_folder_inputs(clips):
    files = list_inputs(clips)
    assert files == sorted(files) and len(files) == len(EXAMPLES) + 2
    assert str(clips / "sub" / EXAMPLES[0].name) in files
    assert list_inputs(clips / "silence.wav") == [str(clips / "silence.wav")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("files.csv", "file,speaker\na.wav,1\n", r"files.csv: no 'path' column"),
        ("files.json", "[]", r"files.json: unknown manifest format '.json'"),
        ("empty.txt", "\n\n", r"empty.txt: the manifest lists no files"),
        ("missing.txt", None, r"missing.txt: no such folder or manifest"),
        ("folder", "", r"folder: no audio files in this folder"),
    ],
)
def test_bad_sources(tmp_path, name, content, message):
    source = tmp_path / name
    if name == "folder":
        source.mkdir()
        (source / "notes.txt").write_text("")
    elif content is not None:
        source.write_text(content)
    with pytest.raises(ArchiveError, match=message):
        list_inputs(source)
