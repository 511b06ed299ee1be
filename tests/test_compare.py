"""`emofuse compare`: systems on identical folds and seeds, the table, the claims, resuming."""

from __future__ import annotations

import importlib.util
import json
import shutil

import fake_corpora
import pytest

import emofuse.experiments.compare
from emofuse.cli import main
from emofuse.config import CorpusSpec, DataConfig, ExperimentConfig, TrainConfig, save_config
from emofuse.experiments.compare import run_compare
from emofuse.experiments.stats import bootstrap_interval, paired_comparison, sign_test
from emofuse.experiments.systems import NetworkSystem
from emofuse.experiments.variants import CLAIMS, FULL, VARIANTS, system_config
from emofuse.model import ModelConfig
from emofuse.signal.streams import stream_spec

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
        streams=[stream_spec("mfcc", channels=16), stream_spec("logmel", channels=8)],
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
    assert models["full"] == {"streams": ["mfcc", "logmel"], **FULL}
    assert models["mfcc-only"] == {"streams": ["mfcc"], **FULL}
    params = {row["system"]: row["corpora"]["emodb"]["params"] for row in table["rows"]}
    assert params["mfcc-only"] < params["full"]  # one branch and no fusion
    text = (out / "table.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| system |"))
    assert header == (
        "| system | emodb UA % | emodb WA % | emovo UA % | emovo WA % | params | train min |"
    )
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


def test_a_second_call_recomputes_nothing(compared, root_dir, monkeypatch):
    out, cache, table = compared
    files = sorted(out.glob("*/*/seed*/*.json"))
    before = {p: p.stat().st_mtime_ns for p in files}

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was started again")

    monkeypatch.setattr(emofuse.experiments.compare, "run_crossval", refuse)
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
    assert line.split("|")[-3].strip() == "-"


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


def test_system_config_sets_only_the_streams_switches_corpus_and_seed():
    base = _base()
    base = ExperimentConfig(
        streams=[stream_spec("mfcc", channels=16, hop_length=320), stream_spec("logmel")],
        model=ModelConfig(fusion="concat", d_model=16, n_heads=2),
        train=base.train,
        data=DataConfig([CorpusSpec("ravdess", "/r")], task="bundled7"),
    )
    full = system_config(base, CorpusSpec("emodb", "/e"), "full", 2)
    assert full.model.fusion == "cross_attention" and full.model.d_model == 16
    assert full.streams == base.streams  # the base's stream settings and widths
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
    streams = {name: [s.name for s in config.streams] for name, config in variants.items()}
    assert streams["mfcc-only"] == ["mfcc"] and streams["logmel-only"] == ["logmel"]
    assert streams["prosody"] == ["mfcc", "logmel", "prosody"]
    prosody = variants["prosody"].streams[2]
    assert prosody.settings == {"sample_rate": 16000, "hop_length": 320}  # the first's grid
    assert streams["whisper-fusion"] == ["mfcc", "logmel", "whisper"]
    whisper = variants["whisper-fusion"].streams[2]
    assert whisper.settings["hop_length"] == 320 and whisper.settings["layers"] == [1, 2, 3]
    assert variants["whisper"].train.eval_window_seconds == 10.0  # encoded whole, as inferred
    assert variants["egemaps-svm"].model == base.model  # the SVM ignores the network settings
    assert {better for _, _, better, _ in CLAIMS} == {"full", "prosody", "whisper-fusion"}
    assert {worse for *_, worse in CLAIMS} <= set(VARIANTS)


def test_sign_test_on_known_inputs():
    assert sign_test([0.1] * 8) == pytest.approx(2 / 256)
    assert sign_test([-0.1] * 8) == pytest.approx(2 / 256)
    assert sign_test([0.1] * 8 + [0.0, 0.0]) == pytest.approx(2 / 256)  # ties dropped
    assert sign_test([1.0] * 9 + [-1.0]) == pytest.approx(2 * 11 / 1024)
    assert sign_test([1.0, 1.0, -1.0, 0.0]) == 1.0  # 2 * (1 + 3) / 8, capped
    assert sign_test([0.0, 0.0, 0.0]) == 1.0
    assert sign_test([]) == 1.0


def test_bootstrap_interval_on_known_inputs():
    assert bootstrap_interval([0.02] * 6) == pytest.approx((0.02, 0.02))
    low, high = bootstrap_interval([0.01, 0.02, 0.03, 0.04, 0.05])
    assert 0.01 <= low < 0.03 < high <= 0.05
    assert bootstrap_interval([0.01, 0.02, 0.03, 0.04, 0.05]) == (low, high)  # seeded
    spread = bootstrap_interval([1.0, -1.0, 1.0, -1.0])
    assert spread[0] < 0 < spread[1]
    # Resampling whole groups: both groups average to 0, so every resample does.
    assert bootstrap_interval([1.0, -1.0, 1.0, -1.0], groups=[0, 0, 1, 1]) == (0.0, 0.0)
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_interval([])
    with pytest.raises(ValueError, match="groups has 1 entries for 2"):
        bootstrap_interval([1.0, 2.0], groups=[0])


def test_paired_comparison_verdicts():
    keys = [(seed, fold) for seed in (0, 1) for fold in range(5)]
    worse = {k: 0.5 for k in keys}
    better = {k: 0.5 + 0.01 * (1 + k[1]) for k in keys}
    stats = paired_comparison(better, worse)
    assert stats["n_pairs"] == 10 and stats["n_folds"] == 5
    assert stats["mean_diff"] == pytest.approx(0.03)
    assert stats["sign_test_p"] == pytest.approx(2 / 1024) and stats["verdict"] == "holds"
    assert paired_comparison(worse, better)["verdict"] == "contradicted"
    noisy = {k: 0.5 + (0.05 if k[1] % 2 else -0.05) for k in keys}
    assert paired_comparison(noisy, worse)["verdict"] == "not shown (difference within noise)"
    one_fold = paired_comparison({(0, 0): 0.9, (1, 0): 0.8}, {(0, 0): 0.1, (1, 0): 0.1})
    assert one_fold["verdict"] == "not shown (fewer than 5 folds)"
    four = paired_comparison({(0, f): 0.9 for f in range(4)}, {(0, f): 0.1 for f in range(4)})
    assert four["verdict"] == "not shown (fewer than 5 folds)" and four["ci_low"] > 0
    assert paired_comparison({(0, 0): 0.9}, {(1, 0): 0.1}) is None  # nothing matched


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
    assert "Missing: emodb whisper seed" in (copy / "table.md").read_text()


def test_compare_help_lists_every_system(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split()).replace("- ", "-")
    assert all(name in text for name in VARIANTS), [n for n in VARIANTS if n not in text]
