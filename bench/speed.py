"""Inference latency and real-time factor of emofuse beside the peers a user would pick.

Systems, batch 1, one clip of synthetic speech-like audio at 16 kHz, 3 s and 10 s, at 1 and
2 torch threads, timed in alternating rounds so background load hits all of them alike:

- ``emofuse_features``: the pipeline's stream front end alone (MFCC + log-Mel).
- ``emofuse_pipeline``: :class:`emofuse.pipeline.EmotionPipeline` of the default config (streams and
  model), eval mode, ``torch.inference_mode`` (waveform -> logits).
- ``egemaps``: openSMILE eGeMAPSv02 functionals, ``Smile.process_signal``; single-threaded
  whatever torch's thread count is.
- ``wav2vec2``: ``transformers.Wav2Vec2Model(Wav2Vec2Config())``, base-sized (about 94 M
  parameters), random weights (nothing is downloaded), forward on the raw waveform.

RTF = processing time / audio duration. Run ``python bench/speed.py`` (``--quick`` for a smoke
run); writes ``bench/results/speed.json`` and ``speed.md``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

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


def run(quick: bool = False) -> dict:
    """Measure every system at every (clip length, threads); return the results dict."""
    began = time.perf_counter()
    load_before = common.load_average()
    whole_run = common.cpu_snapshot()
    initial_threads = torch.get_num_threads()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = build_models()
    n_params = count_parameters(models["pipeline"])
    runs = QUICK_RUNS if quick else RUNS
    measurements = []
    try:
        for threads in THREADS:
            torch.set_num_threads(threads)
            for seconds in CLIP_SECONDS:
                wave = synthetic_speech(seconds)
                snapshot = common.cpu_snapshot()
                stats = common.time_interleaved(
                    system_calls(models, wave), runs=runs[seconds], warmup=1 if quick else 2
                )
                for s in stats.values():
                    s["rtf"] = s["median_ms"] / 1e3 / seconds
                    s["rtf_p90"] = s["p90_ms"] / 1e3 / seconds
                pipe, feats = stats["emofuse_pipeline"], stats["emofuse_features"]
                measurements.append(
                    {
                        "clip_seconds": seconds,
                        "torch_threads": torch.get_num_threads(),
                        "other_processes_cores": common.other_processes_cores(snapshot),
                        "systems": stats,
                        "ratio_wav2vec2_over_pipeline": stats["wav2vec2"]["median_ms"]
                        / pipe["median_ms"],
                        "ratio_egemaps_over_features": stats["egemaps"]["median_ms"]
                        / feats["median_ms"],
                    }
                )
                print(
                    f"{seconds:>3} s, {threads} thread(s): "
                    + ", ".join(f"{n} {s['median_ms']:.2f} ms" for n, s in stats.items())
                )
    finally:
        torch.set_num_threads(initial_threads)
    results = {
        "benchmark": "speed",
        "quick": quick,
        "machine": common.machine_info(),
        "versions": _peer_versions(),
        "load_average_before": load_before,
        "load_average_after": common.load_average(),
        "other_processes_cores": common.other_processes_cores(whole_run),
        "sample_rate": SAMPLE_RATE,
        "signal": "synthetic speech-like (harmonic voice, syllable bursts, pauses, noise)",
        "batch_size": 1,
        "parameters": {
            "emofuse_model": n_params,
            "wav2vec2": count_parameters(models["wav2vec2"]),
        },
        "notes": [
            "openSMILE runs single-threaded whatever torch's thread count is.",
            "wav2vec2 has random weights (Wav2Vec2Model(Wav2Vec2Config())); speed does not "
            "depend on the weights.",
            "Systems are timed in alternating rounds; latencies are medians.",
        ],
        "measurements": measurements,
        "elapsed_seconds": time.perf_counter() - began,
    }
    results["targets"] = check_targets(results)
    return results


def _peer_versions() -> dict:
    return common.package_versions(("emofuse", "torch", "numpy", "opensmile", "transformers"))


def _find(results: dict, seconds: int, threads: int) -> dict:
    for m in results["measurements"]:
        if (m["clip_seconds"], m["torch_threads"]) == (seconds, threads):
            return m
    raise KeyError((seconds, threads))


def check_targets(results: dict) -> list[dict]:
    """Each target with the measured number and PASS/MISS (headline: 10 s, 1 thread; the
    speed ratios are also checked at their worst setting)."""
    head = _find(results, *HEADLINE)
    n_params = results["parameters"]["emofuse_model"]
    worst_w2v = min(results["measurements"], key=lambda m: m["ratio_wav2vec2_over_pipeline"])
    worst_smile = min(results["measurements"], key=lambda m: m["ratio_egemaps_over_features"])

    def where(m: dict) -> str:
        return f"{m['clip_seconds']} s, {m['torch_threads']} thread(s)"

    checks = [
        ("default model parameters in 0.3-2 M", f"{n_params / 1e6:.3f} M", "",
         TARGET_PARAMS[0] <= n_params <= TARGET_PARAMS[1]),
        (f"features + model RTF <= {TARGET_RTF} (10 s, 1 thread)",
         f"{head['systems']['emofuse_pipeline']['rtf']:.4f}", where(head),
         head["systems"]["emofuse_pipeline"]["rtf"] <= TARGET_RTF),
        (f">= {TARGET_VS_WAV2VEC2:g}x faster than wav2vec2-base (10 s, 1 thread)",
         f"{head['ratio_wav2vec2_over_pipeline']:.1f}x", where(head),
         head["ratio_wav2vec2_over_pipeline"] >= TARGET_VS_WAV2VEC2),
        (f">= {TARGET_VS_WAV2VEC2:g}x faster than wav2vec2-base (worst setting)",
         f"{worst_w2v['ratio_wav2vec2_over_pipeline']:.1f}x", where(worst_w2v),
         worst_w2v["ratio_wav2vec2_over_pipeline"] >= TARGET_VS_WAV2VEC2),
        (f"features >= {TARGET_VS_EGEMAPS:g}x faster than eGeMAPS (10 s, 1 thread)",
         f"{head['ratio_egemaps_over_features']:.1f}x", where(head),
         head["ratio_egemaps_over_features"] >= TARGET_VS_EGEMAPS),
        (f"features >= {TARGET_VS_EGEMAPS:g}x faster than eGeMAPS (worst setting)",
         f"{worst_smile['ratio_egemaps_over_features']:.1f}x", where(worst_smile),
         worst_smile["ratio_egemaps_over_features"] >= TARGET_VS_EGEMAPS),
    ]  # fmt: skip
    return [common.Check.of(*check).to_dict() for check in checks]


def render_markdown(results: dict) -> str:
    machine = results["machine"]
    versions = results["versions"]
    rows = []
    for m in results["measurements"]:
        for name in SYSTEMS:
            s = m["systems"][name]
            rows.append(
                [
                    m["clip_seconds"],
                    m["torch_threads"],
                    name,
                    f"{s['median_ms']:.2f}",
                    f"{s['p90_ms']:.2f}",
                    f"{s['rtf']:.5f}",
                    s["runs"],
                ]  # fmt: skip
            )
    ratio_rows = [
        [
            m["clip_seconds"],
            m["torch_threads"],
            f"{m['ratio_wav2vec2_over_pipeline']:.1f}x",
            f"{m['ratio_egemaps_over_features']:.1f}x",
            m["other_processes_cores"],
        ]  # fmt: skip
        for m in results["measurements"]
    ]
    quick = " (QUICK smoke run: too few repetitions to quote)" if results["quick"] else ""
    return "\n\n".join(
        [
            f"# emofuse inference speed{quick}",
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
            "## Targets",
            common.checks_table(results["targets"]),
            "## Latency",
            common.markdown_table(
                ["clip s", "threads", "system", "median ms", "p90 ms", "RTF", "runs"], rows
            ),
            "## Ratios (median latency)",
            common.markdown_table(
                [
                    "clip s",
                    "threads",
                    "wav2vec2 / emofuse pipeline",
                    "eGeMAPS / emofuse features",
                    "cores busy with other processes",
                ],  # fmt: skip
                ratio_rows,
            ),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repetitions (smoke run)")
    common.add_results_dir(parser)
    args = parser.parse_args(argv)
    results = run(quick=args.quick)
    common.write_results("speed", results, render_markdown(results), args.results_dir,
                         quick=args.quick)  # fmt: skip


if __name__ == "__main__":
    main()
