"""Scale-out: data-parallel training under torchrun (2 gloo processes on the CPU), folds in
parallel processes (``--jobs``), mixed precision and batch-building workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import fake_corpora
import numpy as np
import pytest
import torch
from test_crossval import SPEAKERS, STEMS
from test_crossval import _config as _crossval_config
from test_train import LABELS, _config, _feature_set

from emofuse.config import (
    ConfigError,
    ExperimentConfig,
    TrainConfig,
    load_config,
    save_config,
)
from emofuse.experiments.crossval import run_crossval
from emofuse.experiments.loading import load_features, prepare_experiment
from emofuse.pipeline import load_pipeline
from emofuse.training.evaluation import evaluate
from emofuse.training.train import fit

REPO = Path(__file__).resolve().parents[1]


def _torchrun(*args: str, processes: int = 2, timeout: float = 300) -> str:
    """Run ``args`` under ``torchrun --standalone --nproc_per_node processes``; its output."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}", *args]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def emodb_root(tmp_path_factory):
    return fake_corpora.make_emodb(tmp_path_factory.mktemp("emodb"), stems=STEMS, seconds=0.5)


def _cv_config(root: Path, **train) -> ExperimentConfig:
    """test_crossval's tiny network on the fake EmoDB, one thread per process."""
    return _crossval_config(root, **{"num_threads": 1, **train})


FIT_SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
from test_crossval import SPEAKERS, STEMS
from test_crossval import _config as _crossval_config
from test_train import LABELS, _config, _feature_set
from emofuse.training import distributed
from emofuse.training.train import fit
out = sys.argv[1]
result = fit(_feature_set(14, 1), _feature_set(6, 2), LABELS,
             _config(epochs=3, time_masks=1, mixup_alpha=0.2), out, progress=False)
rank = distributed.world().rank
torch.save({{"state": result.pipeline.state_dict(), "history": result.history}},
           f"{{out}}/rank{{rank}}.pt")
"""


def test_two_processes_train_one_model(tmp_path):
    """Under torchrun (gloo, 2 processes) both ranks end with identical weights, which are the
    ones rank 0 saved, and rank 0 alone writes files."""
    script = tmp_path / "fit.py"
    script.write_text(FIT_SCRIPT.format(tests=str(REPO / "tests")))
    out = tmp_path / "run"
    _torchrun(str(script), str(out))
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    saved = load_pipeline(out / "model.pt").state_dict()
    for key, value in ranks[0]["state"].items():
        assert torch.equal(value, ranks[1]["state"][key]), key
        assert torch.equal(value, saved[key]), key
    histories = [[{k: v for k, v in h.items() if k != "seconds"} for h in r["history"]]
                 for r in ranks]  # fmt: skip
    assert histories[0] == histories[1]  # losses and validation UA gathered over the ranks
    assert len(ranks[0]["history"]) == 3
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=False)
    assert len(checkpoint["ranks"]) == 2  # each rank's random state, for resuming
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt", "model.pt", "rank0.pt", "rank1.pt"
    ]  # fmt: skip


def test_torchrun_crossval_metrics_equal_single_process_evaluation(emodb_root, tmp_path):
    """``torchrun -m emofuse crossval``: the written fold metrics are those of a single-process
    evaluation of the saved fold model on the fold's test speakers."""
    config = _cv_config(emodb_root)
    save_config(config, tmp_path / "config.yaml")
    out, cache = tmp_path / "cv", tmp_path / "cache"
    stdout = _torchrun("-m", "emofuse", "crossval", "--config", str(tmp_path / "config.yaml"),
                       "--out", str(out), "--cache", str(cache), "--folds", "0,1")  # fmt: skip
    assert stdout.count("UA") == 3  # two fold lines and one summary, from rank 0 only
    assert load_config(out / "config.yaml") == config
    experiment = prepare_experiment(config)
    features = load_features(experiment.all_utterances, config, cache)
    for index in (0, 1):
        record = json.loads((out / f"fold_{index:02d}.json").read_text())
        test_utts = experiment.folds[index].test
        posteriors = evaluate(
            load_pipeline(out / f"fold_{index:02d}" / "model.pt"),
            features.feature_set(test_utts, experiment.task),
        )
        assert record["test_speakers"] == sorted({f"emodb:{u.speaker}" for u in test_utts})
        assert record["ua"] == pytest.approx(posteriors["ua"], abs=1e-12)
        assert record["wa"] == pytest.approx(posteriors["wa"], abs=1e-12)
        written = np.array([u["posteriors"] for u in record["predictions"]])
        np.testing.assert_allclose(written, posteriors["posteriors"], atol=1e-5)
        assert not (out / f"fold_{index:02d}" / "checkpoint.pt").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["folds"]) == 2


def test_torchrun_train_writes_one_model(emodb_root, tmp_path):
    """``torchrun -m emofuse train``: rank 0 alone prints and writes; the model loads and its
    validation UA is the one reported."""
    config = _cv_config(emodb_root)
    save_config(config, tmp_path / "config.yaml")
    out = tmp_path / "model"
    stdout = _torchrun("-m", "emofuse", "train", "--config", str(tmp_path / "config.yaml"),
                       "--out", str(out), "--cache", str(tmp_path / "cache"))  # fmt: skip
    assert stdout.count("trained on") == 1
    report = json.loads((out / "training.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "model.pt", "training.json"]
    assert len(report["history"]) == config.train.epochs
    assert load_pipeline(out / "model.pt").labels == tuple(report["labels"])


def test_jobs_give_the_same_results_as_one_at_a_time(emodb_root, tmp_path):
    config = _cv_config(emodb_root)
    cache = tmp_path / "cache"
    serial = run_crossval(config, tmp_path / "one", cache_dir=cache, progress=False, jobs=1)
    parallel = run_crossval(config, tmp_path / "two", cache_dir=cache, progress=False, jobs=2)
    assert len(serial["folds"]) == len(SPEAKERS) == len(parallel["folds"])
    for key in ("folds", "mean", "std", "pooled", "confusion"):
        a, b = serial[key], parallel[key]
        if key == "folds":
            a = [{k: v for k, v in f.items() if k != "train_seconds"} for f in a]
            b = [{k: v for k, v in f.items() if k != "train_seconds"} for f in b]
        assert a == b, key
    for index in range(len(SPEAKERS)):
        one = json.loads((tmp_path / "one" / f"fold_{index:02d}.json").read_text())
        two = json.loads((tmp_path / "two" / f"fold_{index:02d}.json").read_text())
        assert one["predictions"] == two["predictions"]
    assert (tmp_path / "two" / "summary.md").is_file()


KILL_PARENT_SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
from emofuse.config import load_config
from emofuse.experiments.crossval import run_crossval
if __name__ == "__main__":  # jobs are spawned: they import this script
    run_crossval(load_config(sys.argv[1]), sys.argv[2], progress=False, jobs=2)
"""


def test_job_processes_exit_when_their_parent_is_killed(emodb_root, tmp_path):
    """SIGKILL of the parent takes the job processes along (no orphan trains on into the run
    folder), and the run resumes where it stopped."""
    import signal
    import time

    config = _cv_config(emodb_root, epochs=50)
    save_config(config, tmp_path / "config.yaml")
    script = tmp_path / "run.py"
    script.write_text(KILL_PARENT_SCRIPT.format(tests=str(REPO / "tests")))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path / "config.yaml"),
                               str(tmp_path / "cv")], env=env)  # fmt: skip
    deadline = time.monotonic() + 120
    while not list((tmp_path / "cv").glob("fold_*/checkpoint.pt")):  # the jobs are training
        assert time.monotonic() < deadline and parent.poll() is None
        time.sleep(0.5)
    children = _children(parent.pid)
    assert len(children) >= 2
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in children):
        assert time.monotonic() < deadline, "job processes outlived their parent"
        time.sleep(0.5)


def _children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    found = []
    for task in tasks.iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_jobs_refuse_bad_values(emodb_root, tmp_path):
    with pytest.raises(ValueError, match="jobs must be positive"):
        run_crossval(_cv_config(emodb_root), tmp_path, jobs=0, progress=False)


def test_resume_with_other_threads_is_allowed_but_other_settings_are_not(emodb_root, tmp_path):
    config = _cv_config(emodb_root, epochs=1)
    run_crossval(config, tmp_path, folds=[0], cache_dir=tmp_path / "c", progress=False)
    faster = replace(config, train=replace(config.train, num_threads=2, loader_workers=0))
    summary = run_crossval(faster, tmp_path, folds=[0], cache_dir=tmp_path / "c", progress=False)
    assert len(summary["folds"]) == 1
    other = replace(config, train=replace(config.train, precision="bf16"))
    with pytest.raises(ValueError, match="train.precision"):
        run_crossval(other, tmp_path, folds=[0], cache_dir=tmp_path / "c", progress=False)


def test_bf16_trains_and_fp16_needs_cuda(tmp_path):
    train, val = _feature_set(14, 1), _feature_set(6, 2)
    result = fit(train, val, LABELS, _config(epochs=2, precision="bf16"), tmp_path / "bf16",
                 progress=False)  # fmt: skip
    assert all(np.isfinite(h["train_loss"]) for h in result.history)
    assert all(v.dtype != torch.bfloat16 for v in result.pipeline.state_dict().values())
    plain = fit(train, val, LABELS, _config(epochs=2), tmp_path / "fp32", progress=False)
    assert result.history[0]["train_loss"] != plain.history[0]["train_loss"]  # autocast was on
    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        fit(train, val, LABELS, _config(precision="fp16"), tmp_path / "fp16", progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_on_cuda_scales_the_loss(tmp_path):
    train, val = _feature_set(14, 1), _feature_set(6, 2)
    config = _config(epochs=2, precision="fp16", device="cuda", loader_workers=2)
    result = fit(train, val, LABELS, config, tmp_path, progress=False)
    assert all(np.isfinite(h["train_loss"]) for h in result.history)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["scaler"]["scale"] > 0


def test_loader_workers_do_not_change_results(tmp_path):
    """Batches built by worker processes depend on the batch's index, not the worker."""
    train, val = _feature_set(14, 1), _feature_set(6, 2)
    runs = [fit(train, val, LABELS, _config(epochs=2, time_masks=1, loader_workers=n),
                tmp_path / str(n), progress=False) for n in (1, 2)]  # fmt: skip
    assert [h["train_loss"] for h in runs[0].history] == [h["train_loss"] for h in runs[1].history]


def test_precision_and_workers_are_checked():
    with pytest.raises(ConfigError, match="train.precision"):
        TrainConfig(precision="fp8")
    with pytest.raises(ConfigError, match="loader_workers"):
        TrainConfig(loader_workers=-2)
    assert TrainConfig(num_threads=3).precision == "fp32"
