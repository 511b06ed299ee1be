"""Inference speed and memory of emofuse's public API: EmotionRecognizer, torch vs onnxruntime.

On voice-like audio (VAD off: the model is timed): ``predict`` latency on 3 s and 10 s clips at
1 and 2 threads, torch vs ONNX in alternating rounds; ``predict_many`` files/s over 3 s FLAC
files (batch 16 and 64, 2 threads); the peak RSS of a fresh process iterating ``timeline`` over
a 1-hour FLAC file. The model: ``--model PATH``, else the bundled one, else a random
default-size pipeline.

    python bench/inference.py [--quick]    # writes bench/results/inference.{json,md}
"""

from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from pathlib import Path

import _common as common
import torch

SAMPLE_RATE = 16000
CLIP_SECONDS = (3, 10)
THREADS = (1, 2)
BACKENDS = ("torch", "onnx")
RUNS = {3: 40, 10: 20}  # timed rounds per clip length (each backend once per round)
QUICK_RUNS = {3: 3, 10: 2}
WARMUP, QUICK_WARMUP = 3, 1

MANY_FILES, QUICK_MANY_FILES = 400, 200  # 3 s FLAC files for predict_many
MANY_SECONDS = 3.0
MANY_BATCH_SIZES = (16, 64)
MANY_THREADS = 2
MANY_ROUNDS, QUICK_MANY_ROUNDS = 3, 1  # passes over the folder per configuration

LONG_SECONDS, QUICK_LONG_SECONDS = 3600, 300  # the timeline file
TIMELINE_THREADS = 1

# the 7-class task (emofuse.corpora.labels); used only for the randomly initialised fallback model
SEVEN_LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")

TARGET_RTF = 0.005  # faster backend, 1 thread, 10 s clip
TARGET_FILES_PER_SECOND = 200.0  # best predict_many configuration, 2 threads
TARGET_PEAK_RSS_MB = 500.0  # timeline over 1 hour, MB = 10**6 bytes
HEADLINE = (10, 1)  # (clip seconds, threads) of the RTF target

# --------------------------------------------------------------------------- model and files


def build_pipeline(model: str | None) -> tuple[torch.nn.Module, dict]:
    """The pipeline to benchmark and a description of where it came from."""
    from emofuse.pipeline import ModelFileError, load_bundled_pipeline, load_pipeline

    if model is not None:
        pipeline = load_pipeline(model)
        about = {"source": "file", "path": str(Path(model).resolve())}
    else:
        try:
            pipeline = load_bundled_pipeline()
            about = {"source": "bundled", "path": "emofuse/pretrained/bundled.pt"}
        except ModelFileError:
            pipeline = random_default_pipeline()
            about = {
                "source": "random-default",
                "path": None,
                "note": "no bundled model installed: randomly initialised default-size "
                "default-config EmotionPipeline (MFCC + log-Mel features, 7 classes) with typical "
                "normalisation statistics; speed does not depend on the weights",
            }
    about["labels"] = list(pipeline.labels)
    about["parameters"] = sum(p.numel() for p in pipeline.parameters())
    about["model_config"] = pipeline.model_config.to_dict()
    return pipeline.eval(), about


def random_default_pipeline(seed: int = 0) -> torch.nn.Module:
    """The default config's pipeline, 7 classes, statistics as emofuse.testing sets."""
    from emofuse.config import ExperimentConfig
    from emofuse.pipeline import pipeline_from_config

    torch.manual_seed(seed)
    pipeline = pipeline_from_config(ExperimentConfig(), SEVEN_LABELS)
    norms = pipeline.normalizers
    with torch.no_grad():  # as emofuse.testing.tiny_pipeline: outputs are not degenerate
        norms["mfcc"].mean.copy_(torch.linspace(-300, 0, norms["mfcc"].mean.numel()))
        norms["mfcc"].std.fill_(20.0)
        norms["logmel"].mean.fill_(-6.0)
        norms["logmel"].std.fill_(3.0)
    return pipeline.eval()


# --------------------------------------------------------------------------- 1. latency


def measure_latency(recognizers: dict, quick: bool) -> list[dict]:
    """``predict`` latency per (threads, clip length), backends in alternating rounds."""
    from emofuse.testing import synthetic_voice

    runs = QUICK_RUNS if quick else RUNS
    out = []
    for threads in THREADS:
        torch.set_num_threads(threads)
        for seconds in CLIP_SECONDS:
            wave = synthetic_voice(seconds, SAMPLE_RATE)
            calls = {
                name: lambda r=recognizers[name][threads], w=wave: r.predict(
                    w, sample_rate=SAMPLE_RATE
                )
                for name in BACKENDS
            }
            snap = common.cpu_snapshot()
            stats = common.time_interleaved(
                calls, runs=runs[seconds], warmup=QUICK_WARMUP if quick else WARMUP
            )
            for s in stats.values():
                s["rtf"] = s["median_ms"] / 1e3 / seconds
                s["rtf_p90"] = s["p90_ms"] / 1e3 / seconds
            preds = {n: recognizers[n][threads].predict(wave, sample_rate=SAMPLE_RATE)
                     for n in BACKENDS}  # fmt: skip
            diff = max(
                abs(preds["torch"].probabilities[k] - preds["onnx"].probabilities[k])
                for k in preds["torch"].probabilities
            )
            m = {
                "clip_seconds": seconds,
                "threads": threads,
                "other_processes_cores": common.other_processes_cores(snap),
                "backends": stats,
                "ratio_torch_over_onnx": stats["torch"]["median_ms"] / stats["onnx"]["median_ms"],
                "max_probability_difference": diff,
            }
            out.append(m)
            print(
                f"predict {seconds:>2} s, {threads} thread(s): "
                + ", ".join(
                    f"{n} {s['median_ms']:.2f} ms (RTF {s['rtf']:.4f})" for n, s in stats.items()
                )
                + f", torch/onnx {m['ratio_torch_over_onnx']:.2f}x"
                + f", others {m['other_processes_cores']} cores"
            )
    return out


# --------------------------------------------------------------------------- 2. throughput


def measure_throughput(recognizers: dict, paths: list[str], quick: bool) -> list[dict]:
    """``predict_many`` files/s per (backend, batch size) at MANY_THREADS threads."""
    configs = {(name, b): recognizers[name][MANY_THREADS]
               for name in BACKENDS for b in MANY_BATCH_SIZES}  # fmt: skip
    stats = common.predict_many_passes(configs, paths, file_seconds=MANY_SECONDS,
                                       rounds=QUICK_MANY_ROUNDS if quick else MANY_ROUNDS,
                                       threads=lambda c: MANY_THREADS)  # fmt: skip
    out = []
    for (name, b), s in stats.items():
        out.append({"backend": name, "batch_size": b, "threads": MANY_THREADS, **s})
        print(f"predict_many {name:>5}, batch {b:>2}, {MANY_THREADS} threads: "
              f"{s['files_per_second_median']:.0f} files/s (median of {s['passes']}), "
              f"others {s['other_processes_cores']} cores")  # fmt: skip
    return out


# --------------------------------------------------------------------------- 3. memory


def measure_memory(workdir: Path, pipeline: torch.nn.Module, onnx: Path, quick: bool) -> dict:
    """Peak RSS of timeline() over a long file, per backend; the long file is deleted after."""
    from emofuse.pipeline import save_pipeline

    seconds = QUICK_LONG_SECONDS if quick else LONG_SECONDS
    model = workdir / "model.pt"
    save_pipeline(pipeline, model)
    audio = workdir / "long.flac"
    began = time.perf_counter()
    size = common.write_long_file(audio, seconds, audio_format="FLAC")
    write_seconds = time.perf_counter() - began
    print(f"wrote a {seconds} s FLAC file ({size / 1e6:.1f} MB) in {write_seconds:.1f} s")
    runs = {}
    try:
        for backend in BACKENDS:
            args = {"backend": backend, "audio": str(audio), "model": str(model),
                    "onnx": str(onnx), "threads": TIMELINE_THREADS}  # fmt: skip
            runs[backend] = common.timeline(args, seconds, f"{backend:>5}, {seconds} s of audio")
    finally:
        audio.unlink(missing_ok=True)
    return {
        "audio_seconds": seconds,
        "file_bytes": size,
        "write_seconds": write_seconds,
        "threads": TIMELINE_THREADS,
        "timeline_defaults": "window 3 s, hop 1.5 s, block_seconds 60, batch_size 16",
        "backends": runs,
    }


# --------------------------------------------------------------------------- run and report


NOTES = [
    "Latency: EmotionRecognizer.predict(array, sample_rate=16000): 3 s windows every "
    "1.5 s, batched together (a 10 s clip is 6 windows, a 3 s clip 1).",
    "torch threads via torch.set_num_threads; onnx via "
    "OnnxBackend(path, num_threads=n) (intra-op threads; inter-op 1).",
    "Backends are timed in alternating rounds; latencies are medians.",
    "predict_many: files/s includes reading and decoding each FLAC file (from the OS page cache).",
    "timeline: a fresh process per backend; peak RSS = ru_maxrss of that process "
    "(launched through a forking shell so it does not inherit this process's "
    "high-water mark); VmHWM reported beside it. MB = 10**6 bytes.",
]


def export(pipeline: torch.nn.Module, onnx: Path) -> float:
    """Export ``pipeline`` to ``onnx``; the seconds it took."""
    from emofuse.inference.onnx import export_onnx

    began = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx(pipeline, onnx)
    seconds = time.perf_counter() - began
    print(f"exported ONNX ({onnx.stat().st_size / 1e6:.1f} MB) in {seconds:.1f} s")
    return seconds


def recognizers(pipeline: torch.nn.Module, onnx: Path) -> dict:
    """Per backend and thread count, the recogniser to time (torch's: one for all)."""
    from emofuse.inference.onnx import OnnxBackend
    from emofuse.inference.recognizer import EmotionRecognizer, TorchBackend

    torch_recognizer = EmotionRecognizer(TorchBackend(pipeline, "cpu", "fp32"), vad=False)
    return {
        "torch": {n: torch_recognizer for n in THREADS},
        "onnx": {n: EmotionRecognizer(OnnxBackend(onnx, num_threads=n), vad=False)
                 for n in THREADS},
    }  # fmt: skip


def run(model: str | None = None, quick: bool = False) -> dict:
    """All three measurements; returns the results dict."""
    started = common.Run.start()
    pipeline, about = build_pipeline(model)
    print(f"model: {about['source']} ({about['parameters']:,} parameters, "
          f"{len(about['labels'])} classes)")  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="emofuse-bench-inference-"))
    try:
        onnx = workdir / "model.onnx"
        export_seconds = export(pipeline, onnx)
        with common.torch_threads_kept():
            by_backend = recognizers(pipeline, onnx)
            latency = measure_latency(by_backend, quick)
            paths = common.write_clips(workdir / "clips", QUICK_MANY_FILES if quick else MANY_FILES,
                                       MANY_SECONDS, sample_rate=SAMPLE_RATE,
                                       audio_format="FLAC")  # fmt: skip
            throughput = measure_throughput(by_backend, paths, quick)
            shutil.rmtree(workdir / "clips")
        memory = measure_memory(workdir, pipeline, onnx, quick)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results = started.header("inference", quick, _versions()) | {
        "sample_rate": SAMPLE_RATE,
        "signal": "emofuse.testing.synthetic_voice (gliding harmonic tone, syllable-rate "
        "loudness, noise), 16-bit FLAC for the file measurements",
        "model": about, "onnx_export_seconds": export_seconds, "notes": NOTES,
        "latency": latency, "throughput": throughput, "memory": memory,
        "elapsed_seconds": started.elapsed(),
    }  # fmt: skip
    results["targets"] = check_targets(results)
    return results


def _versions() -> dict:
    return common.package_versions(("emofuse", "torch", "numpy", "onnxruntime", "onnx",
                                    "onnxscript", "soundfile", "soxr"))  # fmt: skip


def check_targets(results: dict) -> list[dict]:
    """Each target with the measured number and PASS/MISS, as the JSON's dicts."""
    head = next(m for m in results["latency"] if (m["clip_seconds"], m["threads"]) == HEADLINE)
    fastest = min(BACKENDS, key=lambda n: head["backends"][n]["rtf"])
    best = max(results["throughput"], key=lambda m: m["files_per_second_median"])
    memory = results["memory"]
    minutes = memory["audio_seconds"] / 60
    checks = [
        common.Check.of(f"predict RTF <= {TARGET_RTF} (10 s clip, 1 thread, faster backend)",
                        f"{head['backends'][fastest]['rtf']:.4f}", fastest,
                        head["backends"][fastest]["rtf"] <= TARGET_RTF),
        common.Check.of(f"predict_many >= {TARGET_FILES_PER_SECOND:g} files/s (3 s clips, "
                        f"{MANY_THREADS} threads)", f"{best['files_per_second_median']:.0f}",
                        f"{best['backend']}, batch {best['batch_size']}",
                        best["files_per_second_median"] >= TARGET_FILES_PER_SECOND),
    ]  # fmt: skip
    for name, report in memory["backends"].items():
        peak = report["peak"]["ru_maxrss_mb"]
        checks.append(common.Check.of(
            f"timeline peak RSS < {TARGET_PEAK_RSS_MB:g} MB ({minutes:g} min file)",
            f"{peak:.0f} MB", name, peak < TARGET_PEAK_RSS_MB))  # fmt: skip
    return [check.to_dict() for check in checks]


MODEL_LINES = {
    "bundled": "the bundled model (`emofuse/pretrained/bundled.pt`)",
    "random-default": "a randomly initialised default-size pipeline (no bundled model "
    "installed; speed does not depend on the weights)",
}
OTHERS = "cores busy with other processes"


def _header(results: dict) -> list[str]:
    """Title, machine and load, the model and the ONNX export."""
    machine, versions, about = results["machine"], results["versions"], results["model"]
    quick = " (QUICK smoke run: too few repetitions to quote)" if results["quick"] else ""
    model_line = MODEL_LINES.get(about["source"], f"the model file `{about['path']}`")
    return [
        f"# emofuse inference: latency, throughput, memory{quick}",
        f"Machine: {machine['cpu_model']}, {machine['usable_cores']} usable cores; "
        f"Python {machine['python']}, emofuse {versions['emofuse']}, torch "
        f"{versions['torch']}, onnxruntime {versions['onnxruntime']}, numpy "
        f"{versions['numpy']}. Load average (1/5/15 min) before "
        f"{results['load_average_before']}, after {results['load_average_after']}; other "
        f"processes kept {results['other_processes_cores']} cores busy on average during "
        "the run. Where other jobs occupy the cores, the 2-thread numbers measure "
        "contention more than the code.",
        f"Model: {model_line}; {about['parameters']:,} parameters, {len(about['labels'])} "
        f"classes. ONNX: exported once with `export_onnx` "
        f"({results['onnx_export_seconds']:.1f} s), run by `OnnxBackend(path, "
        "num_threads=n)`. Audio: `emofuse.testing.synthetic_voice` at "
        f"{results['sample_rate']} Hz.",
    ]


RATIO_HEADERS = ["clip s", "threads", "torch / onnx (median)",
                 "max abs. probability difference torch vs onnx"]  # fmt: skip
THROUGHPUT_HEADERS = ["backend", "batch", "threads", "files/s (median)", "files/s (best)",
                      "audio s / s", "passes", OTHERS]  # fmt: skip
MEMORY_HEADERS = ["backend", "after imports", "after load", "peak", "peak VmHWM", "segments",
                  "wall s", "RTF", OTHERS]  # fmt: skip


def _latency_section(latency: list[dict]) -> list[str]:
    rows = [
        [m["clip_seconds"], m["threads"], name, f"{s['median_ms']:.2f}", f"{s['p90_ms']:.2f}",
         f"{s['rtf']:.5f}", s["runs"], m["other_processes_cores"]]
        for m in latency
        for name, s in m["backends"].items()
    ]  # fmt: skip
    ratios = [
        [m["clip_seconds"], m["threads"], f"{m['ratio_torch_over_onnx']:.2f}x",
         f"{m['max_probability_difference']:.1e}"]
        for m in latency
    ]  # fmt: skip
    return [
        "## `predict` latency (one clip, array input)",
        "RTF = median latency / audio duration. Backends timed in alternating rounds.",
        common.markdown_table(
            ["clip s", "threads", "backend", "median ms", "p90 ms", "RTF", "runs", OTHERS], rows
        ),  # fmt: skip
        common.markdown_table(RATIO_HEADERS, ratios),
    ]


def _throughput_section(throughput: list[dict]) -> list[str]:
    rows = [
        [m["backend"], m["batch_size"], m["threads"], f"{m['files_per_second_median']:.0f}",
         f"{m['files_per_second_best']:.0f}", f"{m['audio_seconds_per_second_median']:.0f}",
         m["passes"], m["other_processes_cores"]]
        for m in throughput
    ]  # fmt: skip
    return [
        f"## `predict_many` throughput ({throughput[0]['files']} FLAC files of "
        f"{MANY_SECONDS:g} s, decoding included)",
        common.markdown_table(THROUGHPUT_HEADERS, rows),
    ]


def _memory_section(memory: dict) -> list[str]:
    rows = [
        [name, f"{r['after_imports']['ru_maxrss_mb']:.0f}",
         f"{r['after_load']['ru_maxrss_mb']:.0f}", f"{r['peak']['ru_maxrss_mb']:.0f}",
         f"{r['peak']['vm_hwm_mb']:.0f}" if r["peak"]["vm_hwm_mb"] else "n/a", r["segments"],
         f"{r['wall_seconds']:.1f}", f"{r['rtf']:.4f}", r["other_processes_cores"]]
        for name, r in memory["backends"].items()
    ]  # fmt: skip
    return [
        f"## `timeline` memory ({memory['audio_seconds'] / 60:g} min 16 kHz FLAC, "
        f"{memory['file_bytes'] / 1e6:.0f} MB)",
        "A fresh process per backend iterates `recognizer.timeline(path)` "
        f"({memory['timeline_defaults']}) at {memory['threads']} thread(s). RSS in MB "
        "(10^6 bytes) from `ru_maxrss` after the imports (torch, emofuse), after loading "
        "the model, and at the end (the peak); `VmHWM` is the kernel's high-water mark of "
        "the same process. The difference between the peak and after-load columns is what "
        "streaming the audio and running the windows costs.",
        common.markdown_table(MEMORY_HEADERS, rows),
    ]


def render_markdown(results: dict) -> str:
    """The report of a run (its JSON, as written or read back): one section per measurement."""
    sections = [
        *_header(results),
        "## Targets",
        common.checks_table(results["targets"]),
        *_latency_section(results["latency"]),
        *_throughput_section(results["throughput"]),
        *_memory_section(results["memory"]),
    ]
    return "\n\n".join(sections)


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__, quick="few repetitions (smoke run)")
    parser.add_argument("--model", help="model file (default: the bundled model, else random)")
    args = parser.parse_args(argv)
    results = run(model=args.model, quick=args.quick)
    common.report("inference", results, render_markdown, args)


if __name__ == "__main__":
    main()
