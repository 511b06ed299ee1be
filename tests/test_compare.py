"""`emofuse compare`: systems on identical folds and seeds, the table, the claims, resuming.

The statistics are tested in ``test_stats.py``; the pooled claims, the missing runs' estimates,
the costs and the forest plot on hand-made summaries in ``test_claims_table.py``."""

from __future__ import annotations

import importlib.util
import json
import shutil

import fake_corpora
import pytest

import emofuse.experiments.compare
import emofuse.experiments.costs
from emofuse.cli import main
from emofuse.config import CorpusSpec, DataConfig, ExperimentConfig, TrainConfig, save_config
from emofuse.experiments.compare import run_compare
from emofuse.experiments.systems import NetworkSystem
from emofuse.experiments.variants import CLAIMS, FULL, VARIANTS, system_config
from emofuse.features import feature_spec
from emofuse.model import ModelConfig

NETWORKS = ["full", "no-multiscale", "mfcc-only"]
HAS_SVM = importlib.util.find_spec("opensmile") is not None
SYSTEM_LIST = NETWORKS + (["egemaps-svm"] if HAS_SVM else [])
SEEDS = [0, 1]
N_FOLDS = 3  # both fake corpora have 3 speakers, leave-one-speaker-out


@pytest.fixture(scope="module")
def root_dir(tmp_path_factory):
    return fake_corpora.make_small_emodb_emovo(tmp_path_factory.mktemp("corpora"))


def _base() -> ExperimentConfig:
    return ExperimentConfig(
        features=[feature_spec("mfcc", channels=16), feature_spec("logmel", channels=8)],
        model=ModelConfig(d_model=16, n_heads=2, lstm_hidden=16),
        train=TrainConfig(epochs=1, batch_size=8, crop_seconds=0.4, eval_window_seconds=0.4,
                          warmup_epochs=1, device="cpu", time_mask_frames=5),
    )  # fmt: skip


def _corpora(root_dir) -> list[CorpusSpec]:
    return [CorpusSpec(name, str(root_dir / name)) for name in ("emodb", "emovo")]


@pytest.fixture(scope="module")
def compared(root_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    cache = tmp_path_factory.mktemp("cache")
    table = run_compare(
        _base(), _corpora(root_dir), SYSTEM_LIST, SEEDS, out, cache_dir=cache, progress=False
    )
    return out, cache, table


def _fold(out, corpus, system, seed, i) -> dict:
    return json.loads((out / corpus / system / f"seed{seed}" / f"fold_{i:02d}.json").read_text())


def test_files_and_table_shape(compared):
    out, _, table = compared
    assert (out / "table.md").is_file() and (out / "table.json").is_file()
    assert json.loads((out / "table.json").read_text()) == table
    assert table["complete"] and table["runs_done"] == 2 * len(SYSTEM_LIST) * len(SEEDS)
    assert table["shared_folds"] and table["seeds"] == SEEDS
    assert [row["system"] for row in table["rows"]] == SYSTEM_LIST
    assert table["corpora"]["emodb"]["task"] == "emodb7"
    assert table["corpora"]["emovo"]["protocol"] == "loso-speaker"
    for row in table["rows"]:
        assert set(row["corpora"]) == {"emodb", "emovo"}
        for cell in row["corpora"].values():
            assert cell["n"] == N_FOLDS * len(SEEDS)
            assert 0 <= cell["ua_mean"] <= 1 and 0 <= cell["wa_mean"] <= 1
            assert cell["ua_std"] >= 0 and cell["train_seconds"] > 0
    models = {row["system"]: row["model"] for row in table["rows"]}
    assert models["full"] == {"features": ["mfcc", "logmel"], **FULL}
    assert models["mfcc-only"] == {"features": ["mfcc"], **FULL}
    params = {row["system"]: row["corpora"]["emodb"]["params"] for row in table["rows"]}
    assert params["mfcc-only"] < params["full"]  # one branch and no fusion
    text = (out / "table.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| system |"))
    assert header == (
        "| system | emodb UA % | emodb WA % | emovo UA % | emovo WA % | params | train min "
        "| RTF (10 s, 1 thread) |"
    )
    costs = json.loads((out / "costs.json").read_text())
    assert costs["threads"] == 1 and costs["audio_seconds"] == 10.0
    assert set(costs["variants"]) == set(SYSTEM_LIST)  # the SVM only with opensmile
    for row in table["rows"]:
        assert row["rtf"] == costs["variants"][row["system"]]["rtf"] > 0
    assert "All systems share the folds and seeds" in text and "Machine:" in text
    for system in SYSTEM_LIST:
        assert f"| {system} | " in text


def test_every_system_is_tested_on_identical_folds(compared):
    out, _, _ = compared
    for corpus in ("emodb", "emovo"):
        for seed in SEEDS:
            for i in range(N_FOLDS):
                folds = [_fold(out, corpus, s, seed, i) for s in SYSTEM_LIST]
                assert len({tuple(f["test_speakers"]) for f in folds}) == 1
                assert len({tuple(f["val_speakers"]) for f in folds}) == 1
                assert len({tuple(p["id"] for p in f["predictions"]) for f in folds}) == 1
        config = json.loads((out / corpus / "full" / "seed1" / "summary.json").read_text())
        assert config["seed"] == 1 and config["corpus"] == corpus


def test_claims_with_both_systems_run_are_evaluated(compared):
    out, _, table = compared
    evaluated = {(c["claim"], c["corpus"], c["baseline"]) for c in table["claims"]}
    assert evaluated == {
        (claim, corpus, baseline)
        for claim, baseline in (("a", "no-multiscale"), ("b", "mfcc-only"))
        for corpus in ("emodb", "emovo")
    }  # logmel-only, concat-fusion and sum-fusion were not run
    for claim in table["claims"]:
        assert claim["system"] == "full"
        assert claim["n_pairs"] == N_FOLDS * len(SEEDS) == len(claim["differences"])
        assert claim["n_positive"] + claim["n_negative"] + claim["n_ties"] == claim["n_pairs"]
        assert claim["ci_low"] <= claim["mean_diff"] <= claim["ci_high"]
        assert 0 < claim["sign_test_p"] <= 1
        assert claim["verdict"] == "not shown (fewer than 5 folds)"  # 3 folds give no verdict
        assert "3 folds are too few to judge" in claim["sentence"]
        assert claim["corpus"] in claim["sentence"] and claim["baseline"] in claim["sentence"]
        first = claim["differences"][0]
        ua = [
            _fold(out, claim["corpus"], s, first["seed"], first["fold"])["ua"]
            for s in ("full", claim["baseline"])
        ]
        assert first["ua_diff"] == pytest.approx(ua[0] - ua[1])
    text = (out / "table.md").read_text()
    assert "| claim | corpus | comparison |" in text and "full - no-multiscale" in text
    # 3 folds per corpus: no corpus enters the pooled mean
    assert [(p["claim"], p["baseline"], p["n_corpora"], p["mean_diff"], p["verdict"])
            for p in table["pooled"]] == [
        ("a", "no-multiscale", 0, None, "not shown (fewer than 2 corpora)"),
        ("b", "mfcc-only", 0, None, "not shown (fewer than 2 corpora)"),
    ]  # fmt: skip
    assert table["pooled"][0]["left_out"] == ["emodb (3 folds)", "emovo (3 folds)"]
    assert "## Across corpora" in text and "is not pooled; left out: emodb (3 folds)" in text
    assert (out / "claims_forest.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_a_second_call_recomputes_nothing(compared, root_dir, monkeypatch):
    out, cache, table = compared
    files = sorted(out.glob("*/*/seed*/*.json"))
    before = {p: p.stat().st_mtime_ns for p in files}

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was started again")

    monkeypatch.setattr(emofuse.experiments.compare, "run_crossval", refuse)
    monkeypatch.setattr(emofuse.experiments.costs, "_inference_call", refuse)  # costs.json
    again = run_compare(
        _base(), _corpora(root_dir), SYSTEM_LIST, SEEDS, out, cache_dir=cache, progress=False
    )
    assert again["rows"] == table["rows"] and again["claims"] == table["claims"]
    assert {p: p.stat().st_mtime_ns for p in files} == before


def test_the_cli_resumes_the_same_comparison(compared, root_dir, tmp_path, monkeypatch, capsys):
    out, cache, table = compared
    monkeypatch.setattr(NetworkSystem, "run_fold", None)  # any training would fail
    config = tmp_path / "base.yaml"
    save_config(_base(), config)
    argv = ["compare", "--corpus", "emodb", "emovo", "--root-dir", str(root_dir),
            "--systems", *SYSTEM_LIST, "--seeds", "2", "--out", str(out), "--config", str(config),
            "--cache", str(cache)]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"-> {out}/table.md")
    assert json.loads((out / "table.json").read_text())["rows"] == table["rows"]


def test_an_interrupted_run_finishes_only_its_missing_fold(compared, root_dir, tmp_path):
    out, cache, _ = compared
    copy = tmp_path / "compare"
    shutil.copytree(out, copy)
    (copy / "emovo" / "no-multiscale" / "seed1" / "fold_02.json").unlink()
    (copy / "emovo" / "no-multiscale" / "seed1" / "summary.json").unlink()
    calls = []
    real = NetworkSystem.run_fold

    def counting(self, experiment, index, *args, **kwargs):
        calls.append((experiment.corpus, index))
        return real(self, experiment, index, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(NetworkSystem, "run_fold", counting)
        table = run_compare(
            _base(), _corpora(root_dir), SYSTEM_LIST, SEEDS, copy, cache_dir=cache, progress=False
        )
    assert calls == [("emovo", 2)]
    assert table["complete"]


@pytest.mark.skipif(not HAS_SVM, reason="the eGeMAPS baseline needs opensmile")
def test_the_svm_baseline_has_a_row_without_parameters(compared):
    pytest.importorskip("opensmile")
    out, _, table = compared
    row = next(r for r in table["rows"] if r["system"] == "egemaps-svm")
    assert row["model"] is None
    assert all(cell["params"] is None for cell in row["corpora"].values())
    assert _fold(out, "emodb", "egemaps-svm", 1, 0)["system"] == "egemaps-svm"
    line = next(li for li in (out / "table.md").read_text().splitlines() if "| egemaps-svm" in li)
    assert line.split("|")[-4].strip() == "-"  # params (then train min, RTF)


def test_unknown_system_is_refused(root_dir, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"unknown system\(s\) \['bogus'\]; known: full, "):
        run_compare(_base(), _corpora(root_dir), ["full", "bogus"], [0], tmp_path)
    with pytest.raises(ValueError, match="without repeats"):
        run_compare(_base(), _corpora(root_dir), ["full", "full"], [0], tmp_path)
    assert main(["compare", "--corpus", "emodb", "--root-dir", str(root_dir), "--systems",
                 "bogus", "--out", str(tmp_path)]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("emofuse: error: unknown system(s) ['bogus']") and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--root", "emodb"], "--root takes NAME=DIR, got 'emodb'"),
        (["--root", "iemocap=/x"], "names a corpus not in --corpus"),
        ([], "no folder for corpus 'emodb': pass --root-dir or --root emodb=DIR"),
        (["--root", "emodb=/x", "--seeds", "0"], "--seeds must be positive"),
    ],
)
def test_cli_argument_errors(extra, message, tmp_path, capsys):
    assert main(["compare", "--corpus", "emodb", "--out", str(tmp_path), *extra]) == 1
    assert message in capsys.readouterr().err


def test_system_config_sets_only_the_features_switches_corpus_and_seed():
    base = _base()
    base = ExperimentConfig(
        features=[feature_spec("mfcc", channels=16, hop_length=320), feature_spec("logmel")],
        model=ModelConfig(fusion="concat", d_model=16, n_heads=2),
        train=base.train,
        data=DataConfig([CorpusSpec("ravdess", "/r")], task="bundled7"),
    )
    full = system_config(base, CorpusSpec("emodb", "/e"), "full", 2)
    assert full.model.fusion == "cross_attention" and full.model.d_model == 16
    assert full.features == base.features  # the base's feature settings and widths
    assert full.train.seed == 2 and full.train.epochs == base.train.epochs
    assert full.data.corpora == [CorpusSpec("emodb", "/e")] and full.data.task == "bundled7"
    variants = {name: system_config(base, CorpusSpec("emodb", "/e"), name, 0) for name in VARIANTS}
    switched = {
        name: {k: v for k, v in config.model.to_dict().items() if full.model.to_dict()[k] != v}
        for name, config in variants.items() if VARIANTS[name].model and name != "full"
    }  # fmt: skip
    assert switched == {
        "no-multiscale": {"multiscale": False},
        "mfcc-only": {},
        "logmel-only": {},
        "concat-fusion": {"fusion": "concat"},
        "sum-fusion": {"fusion": "sum"},
        "no-bilstm": {"temporal": "none"},
        "prosody": {},
        "whisper": {"temporal": "none", "pooling": "attention"},
        "whisper-fusion": {},
    }
    features = {name: [s.name for s in config.features] for name, config in variants.items()}
    assert features["mfcc-only"] == ["mfcc"] and features["logmel-only"] == ["logmel"]
    assert features["prosody"] == ["mfcc", "logmel", "prosody"]
    prosody = variants["prosody"].features[2]
    assert prosody.settings == {"sample_rate": 16000, "hop_length": 320}  # the first's grid
    assert features["whisper-fusion"] == ["mfcc", "logmel", "whisper"]
    whisper = variants["whisper-fusion"].features[2]
    assert whisper.settings["hop_length"] == 320 and whisper.settings["layers"] == [1, 2, 3]
    assert variants["whisper"].train.eval_window_seconds == 10.0  # encoded whole, as inferred
    assert variants["egemaps-svm"].model == base.model  # the SVM ignores the network settings
    assert [(claim, better, worse) for claim, _, better, worse in CLAIMS] == [
        ("a", "full", "no-multiscale"),
        ("b", "full", "mfcc-only"),
        ("b", "full", "logmel-only"),
        ("c", "full", "concat-fusion"),
        ("c", "full", "sum-fusion"),
        ("d", "full", "no-bilstm"),
        ("e", "prosody", "full"),
        ("f", "whisper-fusion", "full"),
        ("g", "whisper-fusion", "whisper"),
    ]  # the letters
    assert len({statement for claim, statement, *_ in CLAIMS}) == 7  # one per letter


def test_no_run_tabulates_finished_runs_and_lists_the_missing(compared, root_dir, tmp_path):
    out, cache, _ = compared
    copy = tmp_path / "compare"
    shutil.copytree(out, copy)
    systems = [*SYSTEM_LIST, "whisper"]  # whisper never ran here
    table = run_compare(_base(), _corpora(root_dir), systems, SEEDS, copy, cache_dir=cache,
                        progress=False, run=False)  # fmt: skip
    assert not table["complete"]
    assert table["runs_done"] == 2 * len(SYSTEM_LIST) * len(SEEDS)
    assert table["missing"] == [f"{c} whisper seed {s}" for s in SEEDS for c in ("emodb", "emovo")]
    assert not (copy / "emodb" / "whisper").exists()  # nothing was trained
    text = (copy / "table.md").read_text()
    assert "## Missing runs and their estimated training time" in text
    # whisper never ran anywhere: estimated from the full network's runs on the same corpus
    full = {c: [json.loads((copy / c / "full" / f"seed{s}" / "summary.json").read_text())
                ["train_seconds"] for s in SEEDS] for c in ("emodb", "emovo")}  # fmt: skip
    assert [m["train_seconds"] for m in table["missing_estimates"]] == pytest.approx(
        [sum(full[c]) / len(SEEDS) for _ in SEEDS for c in ("emodb", "emovo")]
    )
    assert f"| emodb whisper seed 0 | {sum(full['emodb']) / len(SEEDS) / 60:.0f} |" in text
    assert json.loads((copy / "costs.json").read_text())["variants"]["whisper"]["rtf"] > 0


def test_compare_help_lists_every_system(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split()).replace("- ", "-")
    assert all(name in text for name in VARIANTS), [n for n in VARIANTS if n not in text]
