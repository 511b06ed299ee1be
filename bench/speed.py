"""Inference latency and real-time factor of emofuse beside the peers a user would pick.

Batch 1, synthetic voice at 16 kHz, 3 s and 10 s, 1 and 2 threads, in alternating rounds: the
feature front end, the default pipeline, openSMILE eGeMAPSv02 and a random base-sized wav2vec2.

    python bench/speed.py [--quick]    # writes bench/results/speed.{json,md}
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

import _common as common
import numpy as np
import torch

from emofuse.testing import synthetic_speech

SAMPLE_RATE = 16000
CLIP_SECONDS = (3, 10)
THREADS = (1, 2)
RUNS = {3: 20, 10: 10}  # timed rounds per clip length (each system once per round)
QUICK_RUNS = {3: 3, 10: 2}
SYSTEMS = ("emofuse_features", "emofuse_pipeline", "egemaps", "wav2vec2")
LABELS = ("angry", "happy", "neutral", "sad")  # the default ModelConfig has 4 classes

TARGET_PARAMS = (0.3e6, 2.0e6)
TARGET_RTF = 0.01  # features + model, 1 thread, 10 s clip
TARGET_VS_WAV2VEC2 = 10.0  # wav2vec2 latency / emofuse pipeline latency
TARGET_VS_EGEMAPS = 20.0  # eGeMAPS latency / emofuse features latency
HEADLINE = (10, 1)  # (clip seconds, threads) of the headline numbers


def build_models() -> dict:
    """The emofuse pipeline and feature extractor, the openSMILE extractor and wav2vec2."""
    import opensmile
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    from emofuse.config import ExperimentConfig
    from emofuse.pipeline import pipeline_from_config

    pipeline = pipeline_from_config(ExperimentConfig(), LABELS).eval()
    smile = opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.Functionals,
    )
    wav2vec2 = Wav2Vec2Model(Wav2Vec2Config()).eval()
    return {"pipeline": pipeline, "smile": smile, "wav2vec2": wav2vec2}


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def system_calls(models: dict, wave: np.ndarray) -> dict[str, Callable[[], object]]:
    """One zero-argument call per system, each processing the whole clip ``wave``."""
    pipeline, smile, wav2vec2 = models["pipeline"], models["smile"], models["wav2vec2"]
    batch = torch.from_numpy(wave)[None]  # (1, samples)
    lengths = torch.tensor([wave.size])

    def features() -> object:
        with torch.inference_mode():
            return pipeline.frontend(batch, lengths)

    def full() -> object:
        with torch.inference_mode():
            return pipeline(batch, lengths)

    def egemaps() -> object:
        return smile.process_signal(wave, SAMPLE_RATE)

    def w2v() -> object:
        with torch.inference_mode():
            return wav2vec2(batch).last_hidden_state

    return {"emofuse_features": features, "emofuse_pipeline": full, "egemaps": egemaps,
            "wav2vec2": w2v}  # fmt: skip


@dataclass(frozen=True)
class Measurement:
    """Every system at one (clip length, threads): :func:`common.summarize_times` per system
    with its RTF, and the two speed ratios (a row of the JSON's ``measurements``)."""

    clip_seconds: int
    torch_threads: int
    other_processes_cores: float | None
    systems: dict[str, dict]
    ratio_wav2vec2_over_pipeline: float
    ratio_egemaps_over_features: float

    @classmethod
    def from_dict(cls, row: dict) -> Measurement:
        return cls(**row)

    def where(self) -> str:
        return f"{self.clip_seconds} s, {self.torch_threads} thread(s)"


def measure(models: dict, seconds: int, runs: int, quick: bool) -> Measurement:
    """All systems on one clip of ``seconds`` in alternating rounds, at torch's thread count."""
    wave = synthetic_speech(seconds)
    snapshot = common.cpu_snapshot()
    stats = common.time_interleaved(system_calls(models, wave), runs=runs,
                                    warmup=1 if quick else 2)  # fmt: skip
    for s in stats.values():
        s["rtf"], s["rtf_p90"] = s["median_ms"] / 1e3 / seconds, s["p90_ms"] / 1e3 / seconds
    median = {name: s["median_ms"] for name, s in stats.items()}
    print(f"{seconds:>3} s, {torch.get_num_threads()} thread(s): "
          + ", ".join(f"{n} {ms:.2f} ms" for n, ms in median.items()))  # fmt: skip
    return Measurement(seconds, torch.get_num_threads(), common.other_processes_cores(snapshot),
                       stats, median["wav2vec2"] / median["emofuse_pipeline"],
                       median["egemaps"] / median["emofuse_features"])  # fmt: skip


def run(quick: bool = False) -> dict:
    """Measure every system at every (clip length, threads); return the results dict."""
    started = common.Run.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = build_models()
    runs = QUICK_RUNS if quick else RUNS
    measurements = []
    with common.torch_threads_kept():
        for threads in THREADS:
            torch.set_num_threads(threads)
            measurements += [measure(models, s, runs[s], quick) for s in CLIP_SECONDS]
    results = started.header("speed", quick, _peer_versions()) | {
        "sample_rate": SAMPLE_RATE,
        "signal": "synthetic speech-like (harmonic voice, syllable bursts, pauses, noise)",
        "batch_size": 1,
        "parameters": {
            "emofuse_model": count_parameters(models["pipeline"]),
            "wav2vec2": count_parameters(models["wav2vec2"]),
        },  # fmt: skip
        "notes": [
            "openSMILE runs single-threaded whatever torch's thread count is.",
            "wav2vec2 has random weights (Wav2Vec2Model(Wav2Vec2Config())); speed does not "
            "depend on the weights.",
            "Systems are timed in alternating rounds; latencies are medians.",
        ],
        "measurements": [asdict(m) for m in measurements],
        "elapsed_seconds": started.elapsed(),
    }
    results["targets"] = check_targets(results)
    return results


def _peer_versions() -> dict:
    return common.package_versions(("emofuse", "torch", "numpy", "opensmile", "transformers"))


def check_targets(results: dict) -> list[dict]:
    """Each target with the measured number and PASS/MISS (headline: 10 s, 1 thread; the
    speed ratios are also checked at their worst setting)."""
    rows = [Measurement.from_dict(m) for m in results["measurements"]]
    head = next(m for m in rows if (m.clip_seconds, m.torch_threads) == HEADLINE)
    n_params = results["parameters"]["emofuse_model"]
    worst_w2v = min(rows, key=lambda m: m.ratio_wav2vec2_over_pipeline)
    worst_smile = min(rows, key=lambda m: m.ratio_egemaps_over_features)
    rtf = head.systems["emofuse_pipeline"]["rtf"]
    w2v, smile = (
        f">= {TARGET_VS_WAV2VEC2:g}x faster than wav2vec2-base",
        (f"features >= {TARGET_VS_EGEMAPS:g}x faster than eGeMAPS"),
    )
    checks = [
        ("default model parameters in 0.3-2 M", f"{n_params / 1e6:.3f} M", "",
         TARGET_PARAMS[0] <= n_params <= TARGET_PARAMS[1]),
        (f"features + model RTF <= {TARGET_RTF} (10 s, 1 thread)", f"{rtf:.4f}", head.where(),
         rtf <= TARGET_RTF),
        *[(f"{w2v} ({setting})", f"{m.ratio_wav2vec2_over_pipeline:.1f}x", m.where(),
           m.ratio_wav2vec2_over_pipeline >= TARGET_VS_WAV2VEC2)
          for setting, m in (("10 s, 1 thread", head), ("worst setting", worst_w2v))],
        *[(f"{smile} ({setting})", f"{m.ratio_egemaps_over_features:.1f}x", m.where(),
           m.ratio_egemaps_over_features >= TARGET_VS_EGEMAPS)
          for setting, m in (("10 s, 1 thread", head), ("worst setting", worst_smile))],
    ]  # fmt: skip
    return [common.Check.of(*check).to_dict() for check in checks]


def _about(results: dict) -> list[str]:
    """The machine, the load and how the systems were run."""
    machine, versions = results["machine"], results["versions"]
    return [
        f"Machine: {machine['cpu_model']}, {machine['usable_cores']} usable cores; "
        f"Python {machine['python']}, torch {versions['torch']}, numpy {versions['numpy']}, "
        f"opensmile {versions['opensmile']}, transformers {versions['transformers']}. "
        f"Load average (1/5/15 min) before {results['load_average_before']}, after "
        f"{results['load_average_after']}; other processes kept "
        f"{results['other_processes_cores']} cores busy on average during the run. Other "
        "jobs share the machine: where they occupy the cores torch wants, the multi-thread "
        "numbers measure contention more than the code.",
        f"Batch 1, {results['signal']} audio at {results['sample_rate']} Hz. "
        "RTF = processing time / audio duration (median latency). Systems are timed in "
        "alternating rounds. openSMILE runs single-threaded whatever torch's thread count "
        "is; wav2vec2 is base-sized with random weights "
        f"({results['parameters']['wav2vec2'] / 1e6:.1f} M parameters); the emofuse model "
        f"has {results['parameters']['emofuse_model']:,} parameters.",
    ]


def _latency_table(rows: list[Measurement]) -> str:
    cells = [[m.clip_seconds, m.torch_threads, name, f"{s['median_ms']:.2f}",
              f"{s['p90_ms']:.2f}", f"{s['rtf']:.5f}", s["runs"]]
             for m in rows for name, s in ((n, m.systems[n]) for n in SYSTEMS)]  # fmt: skip
    headers = ["clip s", "threads", "system", "median ms", "p90 ms", "RTF", "runs"]
    return common.markdown_table(headers, cells)


def _ratio_table(rows: list[Measurement]) -> str:
    cells = [[m.clip_seconds, m.torch_threads, f"{m.ratio_wav2vec2_over_pipeline:.1f}x",
              f"{m.ratio_egemaps_over_features:.1f}x", m.other_processes_cores]
             for m in rows]  # fmt: skip
    headers = ["clip s", "threads", "wav2vec2 / emofuse pipeline", "eGeMAPS / emofuse features",
               "cores busy with other processes"]  # fmt: skip
    return common.markdown_table(headers, cells)


def render_markdown(results: dict) -> str:
    """The report of a run (its JSON, as written or read back)."""
    rows = [Measurement.from_dict(m) for m in results["measurements"]]
    quick = " (QUICK smoke run: too few repetitions to quote)" if results["quick"] else ""
    return "\n\n".join([
        f"# emofuse inference speed{quick}", *_about(results),
        "## Targets", common.checks_table(results["targets"]),
        "## Latency", _latency_table(rows),
        "## Ratios (median latency)", _ratio_table(rows),
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__, quick="few repetitions (smoke run)")
    args = parser.parse_args(argv)
    results = run(quick=args.quick)
    common.report("speed", results, render_markdown, args)


if __name__ == "__main__":
    main()
