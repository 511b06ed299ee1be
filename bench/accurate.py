"""Speed and memory of the ``accurate`` model (frozen Whisper base encoder, layers 1-3 of 6, and
a small head) beside the ``fast`` model and a wav2vec2-base-sized encoder, on voice-like audio
(VAD off): predict RTF on a 10 s clip and where the time goes; ``predict_many`` files/s (batch
16 and 32, 2 threads and 1); the peak RSS of a fresh process running ``timeline`` over a 1-hour
WAV file (10 min with ``--quick``); int8 dynamic quantisation vs fp32 (RTF, closeness, UA with
``--eval-dir/--eval-corpus``). The model: ``--model PATH``, else the bundled one, else an
untrained pipeline of ``configs/accurate.yaml`` (speed does not depend on training).

    python bench/accurate.py [--quick]    # writes bench/results/accurate.{json,md}
"""

from __future__ import annotations

import argparse
import io
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import _common as common
import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
ACCURATE_CONFIG = REPO / "configs" / "accurate.yaml"
SAMPLE_RATE = 16000
SEVEN_LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")

CLIP_SECONDS = 10.0
RTF_RUNS = {"accurate": 20, "fast": 20, "wav2vec2": 8}  # timed rounds per system
QUICK_RTF_RUNS = {"accurate": 3, "fast": 3, "wav2vec2": 2}
WARMUP, QUICK_WARMUP = 2, 1
PARTS_RUNS, QUICK_PARTS_RUNS = 10, 3

MANY_FILES, QUICK_MANY_FILES = 200, 60
MANY_SECONDS = 3.0
MANY_THREADS = (2, 1)
MANY_BATCH_SIZES = (16, 32)
MANY_ROUNDS, QUICK_MANY_ROUNDS = 3, 1

LONG_SECONDS, QUICK_LONG_SECONDS = 3600, 600
TIMELINE_BATCH = None  # EmotionRecognizer.timeline's default (about 30 s of audio per pass)
DIAG_SECONDS, QUICK_DIAG_SECONDS = 300, 120  # shorter file, smaller timeline batches
DIAG_BATCHES = (4, 1)

INT8_RUNS, QUICK_INT8_RUNS = 15, 3
INT8_VARIANTS = ("int8", "int8-perchannel")
INT8_CLIPS = ((3.0, 110.0, 0), (5.0, 150.0, 1), (10.0, 190.0, 2), (20.0, 230.0, 3))  # s, Hz, seed
QUICK_EVAL_LIMIT = 60
UA_TOLERANCE_POINTS = 0.5

TARGET_RTF = 0.02  # accurate, 10 s clip, batch 1, 1 thread
TARGET_FILES_PER_SECOND = 100.0  # accurate, best batch size, 2 threads
TARGET_PEAK_RSS_MB = 600.0  # accurate, 1-hour timeline, MB = 10**6 bytes

# --------------------------------------------------------------------------- models and files


def _describe(pipeline: nn.Module, about: dict) -> dict:
    about["labels"] = list(pipeline.labels)
    about["parameters"] = sum(p.numel() for p in pipeline.parameters())
    about["frontend_parameters"] = sum(p.numel() for p in pipeline.frontend.parameters())
    about["head_parameters"] = about["parameters"] - about["frontend_parameters"]
    about["features"] = [s.to_dict() for s in pipeline.features]
    about["eval_windows"] = pipeline.windows.to_dict()
    return about


UNTRAINED_NOTE = (
    "no bundled accurate model installed: pipeline_from_config(configs/accurate.yaml) with the "
    "real Whisper base encoder weights (installed weight packages) and a randomly initialised "
    "head; speed does not depend on training"
)


def build_accurate(model: str | None) -> tuple[nn.Module, dict]:
    """The accurate pipeline to benchmark and where it came from."""
    from emofuse.config import load_config
    from emofuse.pipeline import ModelFileError, load_model, pipeline_from_config

    if model is not None:
        pipeline = load_model(model)
        about = {"source": "file", "path": str(Path(model).resolve()), "trained": True}
    else:
        try:
            pipeline = load_model("accurate")
            about = {"source": "bundled", "path": "emofuse/pretrained/accurate.pt",
                     "trained": True}  # fmt: skip
        except ModelFileError:
            torch.manual_seed(0)
            pipeline = pipeline_from_config(load_config(ACCURATE_CONFIG), labels=SEVEN_LABELS)
            about = {"source": "untrained-config", "path": None, "trained": False,
                     "note": UNTRAINED_NOTE}  # fmt: skip
    return pipeline.eval(), _describe(pipeline, about)


def build_fast() -> tuple[nn.Module, dict]:
    from emofuse.pipeline import load_model

    pipeline = load_model("fast").eval()
    about = {"source": "bundled", "path": "emofuse/pretrained/fast.pt"}
    return pipeline, _describe(pipeline, about)


def build_wav2vec2() -> nn.Module:
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    return Wav2Vec2Model(Wav2Vec2Config()).eval()


def _recognizer(pipeline: nn.Module):
    from emofuse.inference.recognizer import EmotionRecognizer, TorchBackend

    return EmotionRecognizer(TorchBackend(pipeline, device="cpu", precision="fp32"), vad=False)


def _quantized(pipeline: nn.Module, variant: str) -> nn.Module:
    """``variant`` "int8": quantize_dynamic's default (per-tensor weight scales);
    "int8-perchannel": one weight scale per output row."""
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

    qconfig = {"int8": default_dynamic_qconfig,
               "int8-perchannel": per_channel_dynamic_qconfig}[variant]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization deprecation notices
        return torch.ao.quantization.quantize_dynamic(
            pipeline, {nn.Linear: qconfig}, dtype=torch.qint8
        ).eval()


def _state_mb(module: nn.Module) -> float:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(module.state_dict(), buffer)
    return buffer.tell() / 1e6


# --------------------------------------------------------------------------- 1. RTF


def measure_rtf(accurate, fast, wav2vec2, threads: int, quick: bool) -> dict:
    """predict RTF on a 10 s clip, the three systems in alternating rounds."""
    from emofuse.testing import synthetic_voice

    torch.set_num_threads(threads)
    wave = synthetic_voice(CLIP_SECONDS, SAMPLE_RATE)
    batch = torch.from_numpy(wave)[None]
    rec_acc, rec_fast = _recognizer(accurate), _recognizer(fast)

    def w2v() -> torch.Tensor:
        with torch.inference_mode():
            return wav2vec2(batch).last_hidden_state

    calls = {
        "accurate": lambda: rec_acc.predict(wave, sample_rate=SAMPLE_RATE),
        "fast": lambda: rec_fast.predict(wave, sample_rate=SAMPLE_RATE),
        "wav2vec2": w2v,
    }
    snap = common.cpu_snapshot()
    stats = common.time_interleaved(
        calls, runs=QUICK_RTF_RUNS if quick else RTF_RUNS, warmup=QUICK_WARMUP if quick else WARMUP
    )
    for s in stats.values():
        s["rtf"] = s["median_ms"] / 1e3 / CLIP_SECONDS
        s["rtf_p90"] = s["p90_ms"] / 1e3 / CLIP_SECONDS
    out = {
        "clip_seconds": CLIP_SECONDS,
        "threads": threads,
        "batch": 1,
        "other_processes_cores": common.other_processes_cores(snap),
        "systems": stats,
        "ratio_accurate_over_fast": stats["accurate"]["median_ms"] / stats["fast"]["median_ms"],
        "ratio_wav2vec2_over_accurate": stats["wav2vec2"]["median_ms"]
        / stats["accurate"]["median_ms"],
    }
    print(
        f"RTF, {CLIP_SECONDS:g} s clip, {threads} thread(s): "
        + ", ".join(f"{n} {s['median_ms']:.1f} ms (RTF {s['rtf']:.4f})" for n, s in stats.items())
        + f"; others {out['other_processes_cores']} cores"
    )
    return out


def _same_logits(pipeline: nn.Module, a: dict, b: dict) -> bool:
    with torch.inference_mode():
        return bool(torch.allclose(pipeline.forward_features(a), pipeline.forward_features(b),
                                   atol=1e-5))  # fmt: skip


def measure_parts(accurate, threads: int, quick: bool) -> dict:
    """Where the accurate model's time goes on a 10 s clip (one window), in alternating rounds."""
    from emofuse.testing import synthetic_voice

    torch.set_num_threads(threads)
    wave = synthetic_voice(CLIP_SECONDS, SAMPLE_RATE)
    rec = _recognizer(accurate)
    (name,) = accurate.frontend.extractors.keys()
    whisper = accurate.frontend.extractors[name]
    layers = whisper.settings.layers
    w = torch.from_numpy(wave - wave.mean())[None]
    n = torch.tensor([w.shape[1]])
    with torch.inference_mode():
        mel, frame_lengths = whisper.log_mel(w, n)
        features = accurate.frontend(w, n)
        contiguous = {k: (x.contiguous(), ln) for k, (x, ln) in features.items()}

    def inference(fn):
        def call():
            with torch.inference_mode():
                return fn()

        return call

    calls = {
        "predict (EmotionRecognizer)": lambda: rec.predict(wave, sample_rate=SAMPLE_RATE),
        "pipeline forward": inference(lambda: accurate(w, n)),
        "whisper log-Mel": inference(lambda: whisper.log_mel(w, n)),
        "whisper encoder (conv stem + layers)": inference(
            lambda: whisper.encoder(mel, frame_lengths, layers)
        ),
        "whisper stream (log-Mel + encoder + stacking)": inference(lambda: accurate.frontend(w, n)),
        "normaliser + head": inference(lambda: accurate.forward_features(features)),
        "normaliser + head, input made contiguous (diagnostic)": inference(
            lambda: accurate.forward_features(
                {k: (x.contiguous(), ln) for k, (x, ln) in features.items()}
            )
        ),
    }
    snap = common.cpu_snapshot()
    stats = common.time_interleaved(
        calls, runs=QUICK_PARTS_RUNS if quick else PARTS_RUNS, warmup=QUICK_WARMUP if quick else 1
    )
    total = stats["pipeline forward"]["median_ms"]
    for s in stats.values():
        s["share_of_pipeline"] = s["median_ms"] / total
    x, _ = features[name]
    out = {
        "clip_seconds": CLIP_SECONDS,
        "threads": threads,
        "other_processes_cores": common.other_processes_cores(snap),
        # key names as in the committed bench/results/accurate.json (written before "features")
        "stream_output_shape": list(x.shape),
        "stream_output_contiguous": bool(x.is_contiguous()),
        "contiguous_check_close": _same_logits(accurate, features, contiguous),
        "parts": stats,
    }
    print("accurate, where the time goes: " + ", ".join(
        f"{k} {s['median_ms']:.1f} ms" for k, s in stats.items()))  # fmt: skip
    return out


# --------------------------------------------------------------------------- 2. throughput


def measure_throughput(models: dict, paths: list[str], quick: bool) -> list[dict]:
    """predict_many files/s per (threads, model, batch size), all in alternating rounds."""
    recognizers = {name: _recognizer(p) for name, p in models.items()}
    configs = {(t, name, b): recognizers[name]
               for t in MANY_THREADS for name in models for b in MANY_BATCH_SIZES}  # fmt: skip
    stats = common.predict_many_passes(configs, paths, file_seconds=MANY_SECONDS,
                                       rounds=QUICK_MANY_ROUNDS if quick else MANY_ROUNDS,
                                       threads=lambda c: c[0])  # fmt: skip
    out = []
    for (t, name, b), s in stats.items():
        out.append({"model": name, "threads": t, "batch_size": b, **s})
        print(f"predict_many {name:>8}, batch {b:>2}, {t} thread(s): "
              f"{s['files_per_second_median']:.1f} files/s (median of {s['passes']}), "
              f"others {s['other_processes_cores']} cores")  # fmt: skip
    return out


# --------------------------------------------------------------------------- 3. memory


def measure_memory(workdir: Path, pipeline: nn.Module, about: dict, threads: int,
                   quick: bool) -> dict:  # fmt: skip
    """Peak RSS and wall time of timeline() over a long WAV file with the accurate model."""
    from emofuse.pipeline import save_pipeline

    seconds = QUICK_LONG_SECONDS if quick else LONG_SECONDS
    if about["source"] == "file":
        model = Path(about["path"])
    elif about["source"] == "bundled":
        import emofuse

        model = Path(emofuse.__file__).resolve().parent / "pretrained" / "accurate.pt"
    else:  # written as the real model file would be (frontend weights in float16)
        model = workdir / "accurate-untrained.pt"
        save_pipeline(pipeline, model)
    runs = []
    diag_seconds = QUICK_DIAG_SECONDS if quick else DIAG_SECONDS
    for seconds_, batches in ((seconds, (TIMELINE_BATCH,)), (diag_seconds, DIAG_BATCHES)):
        audio = workdir / f"long-{seconds_}.wav"
        began = time.perf_counter()
        size = common.write_long_file(audio, seconds_, audio_format="WAV", quiet_every=5)
        write_seconds = time.perf_counter() - began
        print(f"wrote a {seconds_} s WAV file ({size / 1e6:.1f} MB) in {write_seconds:.1f} s")
        try:
            for batch_size in batches:
                args = {"audio": str(audio), "model": str(model), "threads": threads,
                        "batch_size": batch_size}  # fmt: skip
                runs.append(common.timeline(
                    args, seconds_, f"accurate, {seconds_} s of audio, batch {batch_size}",
                    audio_seconds=seconds_, file_bytes=size, batch_size=batch_size))  # fmt: skip
        finally:
            audio.unlink(missing_ok=True)
    w = pipeline.windows
    return {
        "audio_seconds": seconds,
        "model_file": str(model),
        "model_file_bytes": model.stat().st_size,
        "threads": threads,
        "timeline_defaults": f"window {w.window_seconds:g} s, hop {w.hop_seconds:g} s, "
        f"block_seconds 60, batch_size {TIMELINE_BATCH or 'default'}",
        "report": runs[0],
        "smaller_batches": runs[1:],
    }


# --------------------------------------------------------------------------- 4. int8


def _eval_set(corpus: str, root: str, labels: tuple[str, ...], limit: int | None) -> dict:
    """The corpus's utterances whose label maps onto ``labels`` (a registered task with exactly
    these labels, e.g. bundled7), with their class indices in the model's label order."""
    from emofuse.corpora import load_corpus
    from emofuse.corpora.labels import TASKS, apply_task

    matching = [t for t in TASKS.values() if set(t.labels) == set(labels)]
    task = next((t for t in matching if t.name == "bundled7"), matching[0] if matching else None)
    if task is None:
        raise SystemExit(f"no label task has the model's labels {labels}")
    selection = apply_task(load_corpus(corpus, root), task)
    utterances = selection.utterances
    if limit is not None and len(utterances) > limit:  # an even spread over the sorted list
        step = len(utterances) / limit
        utterances = [utterances[int(i * step)] for i in range(limit)]
    return {
        "task": task.name,
        "summary": selection.summary(),
        "paths": [str(u.path) for u in utterances],
        "targets": np.array([labels.index(u.label) for u in utterances], dtype=np.int64),
    }


def _predicted(predictions: list, labels: tuple[str, ...]) -> np.ndarray:
    """Class index per prediction; -1 (always wrong) for a silent or unreadable file."""
    return np.array([labels.index(p.label) if p is not None and not p.silent else -1
                     for p in predictions], dtype=np.int64)  # fmt: skip


INT8_NOTES = {
    "variants": {
        "int8": "quantize_dynamic(pipeline, {nn.Linear}, dtype=torch.qint8): per-tensor "
        "weight scales",
        "int8-perchannel": "quantize_dynamic(pipeline, {nn.Linear: "
        "per_channel_dynamic_qconfig}, dtype=torch.qint8): one weight scale per output row",
    },
    "note": "int8 weights; activations quantised per tensor at run time; the Whisper conv "
    "stem and the head's convolutions stay fp32",
}


def _int8_rtf(rec: dict, threads: int, quick: bool) -> dict:
    """fp32 and the int8 variants' predict RTF on a 10 s clip, in alternating rounds."""
    from emofuse.testing import synthetic_voice

    wave = synthetic_voice(CLIP_SECONDS, SAMPLE_RATE)
    calls = {k: (lambda r=r: r.predict(wave, sample_rate=SAMPLE_RATE)) for k, r in rec.items()}
    snap = common.cpu_snapshot()
    runs, warmup = (QUICK_INT8_RUNS, QUICK_WARMUP) if quick else (INT8_RUNS, WARMUP)
    stats = common.time_interleaved(calls, runs=runs, warmup=warmup)
    for s in stats.values():
        s["rtf"] = s["median_ms"] / 1e3 / CLIP_SECONDS
        s["speedup_over_fp32"] = stats["fp32"]["median_ms"] / s["median_ms"]
    print(f"int8 vs fp32, {CLIP_SECONDS:g} s clip, {threads} thread(s): " + ", ".join(
        f"{k} {s['median_ms']:.1f} ms ({s['speedup_over_fp32']:.2f}x)"
        for k, s in stats.items()))  # fmt: skip
    return {"threads": threads, "clip_seconds": CLIP_SECONDS, "systems": stats,
            "other_processes_cores": common.other_processes_cores(snap)}  # fmt: skip


def _hidden_closeness(a: torch.Tensor, b: torch.Tensor) -> dict:
    """Relative L2 error and lowest per-frame cosine of one layer's hidden states (W, T)."""
    return {
        "relative_l2_error": float((a - b).norm() / a.norm()),
        "min_frame_cosine": float(nn.functional.cosine_similarity(a, b, dim=0).min()),
    }


def _int8_clip(models: dict, rec: dict, seconds: float, pitch: float, seed: int) -> dict:
    """How close each int8 variant's probabilities and Whisper hidden states are to fp32's on
    one synthetic clip."""
    from emofuse.testing import synthetic_voice

    extractors = models["fp32"].frontend.extractors
    (name,) = extractors.keys()
    width, layers = extractors[name].settings.width, extractors[name].settings.layers
    clip = synthetic_voice(seconds, SAMPLE_RATE, pitch=pitch, seed=seed)
    preds = {k: r.predict(clip, sample_rate=SAMPLE_RATE) for k, r in rec.items()}
    w = torch.from_numpy(clip - clip.mean())[None]
    n = torch.tensor([w.shape[1]])
    with torch.inference_mode():
        hidden = {k: m.frontend(w, n)[name][0][0] for k, m in models.items()}  # (L W, T)
    row = {"seconds": seconds, "pitch": pitch, "seed": seed,
           "fp32_top_probability": preds["fp32"].confidence, "variants": {}}  # fmt: skip
    for variant in INT8_VARIANTS:
        per_layer = {}
        for i, k in enumerate(layers):
            rows = slice(i * width, (i + 1) * width)
            per_layer[str(k)] = _hidden_closeness(hidden["fp32"][rows], hidden[variant][rows])
        p32, p8 = preds["fp32"], preds[variant]
        row["variants"][variant] = {
            "max_abs_probability_difference": max(
                abs(p32.probabilities[c] - p8.probabilities[c]) for c in p32.probabilities
            ),
            "same_label": p32.label == p8.label,
            "hidden_states": per_layer,
        }
    return row


def _int8_summary(clips: list[dict], layers) -> dict:
    """Per variant the largest probability difference and hidden-state error over the clips."""
    summary = {
        v: {
            "max_abs_probability_difference": max(
                c["variants"][v]["max_abs_probability_difference"] for c in clips
            ),
            "max_hidden_relative_l2_error": {
                str(k): max(
                    c["variants"][v]["hidden_states"][str(k)]["relative_l2_error"] for c in clips
                )
                for k in layers
            },
        }
        for v in INT8_VARIANTS
    }
    for v, s in summary.items():
        print(f"{v}: max |p32 - p8| over {len(clips)} clips "
              f"{s['max_abs_probability_difference']:.2e}, hidden-state relative L2 error by "
              f"layer {s['max_hidden_relative_l2_error']}")  # fmt: skip
    return summary


def _int8_verdict(variant: str, change: float, trained: bool) -> str:
    keep = abs(change) < UA_TOLERANCE_POINTS
    verdict = (f"{'keep' if keep else 'do not keep'} {variant}: UA moved {change:+.2f} points "
               f"(tolerance {UA_TOLERANCE_POINTS})")  # fmt: skip
    if not trained:
        verdict += (
            " -- but the accurate model is UNTRAINED (random head): its UA is chance "
            "level, so this says nothing about the trained model"
        )
    return verdict


def _int8_eval(rec: dict, labels: tuple[str, ...], trained: bool, eval_dir: str,
               eval_corpus: str, eval_limit: int | None) -> dict:  # fmt: skip
    """UA and WA of fp32 and the int8 variants on a corpus, and a keep/drop verdict each."""
    from emofuse.metrics import unweighted_accuracy, weighted_accuracy

    data = _eval_set(eval_corpus, eval_dir, labels, eval_limit)
    print(f"eval on {eval_corpus}: {data['summary']}; using {len(data['paths'])} files")
    y = data["targets"]
    result = {"corpus": eval_corpus, "root": str(Path(eval_dir).resolve()),
              "task": data["task"], "selection": data["summary"], "files": len(y),
              "limit": eval_limit, "systems": {}, "verdicts": {}}  # fmt: skip
    predicted = {}
    for key, r in rec.items():
        began = time.perf_counter()
        predictions = r.predict_many(data["paths"], batch_size=16)
        elapsed = time.perf_counter() - began
        predicted[key] = _predicted(predictions, labels)
        result["systems"][key] = {
            "ua": unweighted_accuracy(y, predicted[key]),
            "wa": weighted_accuracy(y, predicted[key]),
            "seconds": elapsed,
            "files_per_second": len(y) / elapsed,
        }
    for v in INT8_VARIANTS:
        change = 100 * (result["systems"][v]["ua"] - result["systems"]["fp32"]["ua"])
        result["systems"][v]["ua_change_points"] = change
        result["systems"][v]["prediction_agreement"] = float(
            np.mean(predicted["fp32"] == predicted[v])
        )
        result["verdicts"][v] = verdict = _int8_verdict(v, change, trained)
        print(f"eval: UA fp32 {result['systems']['fp32']['ua']:.4f}, {v} "
              f"{result['systems'][v]['ua']:.4f}; {verdict}")  # fmt: skip
    return result


@dataclass(frozen=True)
class Int8:
    """int8 vs fp32 (the JSON's ``int8`` after :data:`INT8_NOTES`)."""

    quantize_seconds: dict
    linear_layers: int
    quantized_linear_layers: int
    quantized_in_encoder: int
    state_dict_mb: dict
    rtf: dict
    clips: list
    summary: dict
    eval: dict | None


def measure_int8(accurate, about: dict, threads: int, quick: bool, eval_dir: str | None,
                 eval_corpus: str | None, eval_limit: int | None) -> dict:  # fmt: skip
    """Dynamic int8 quantisation of the accurate pipeline's Linear layers vs fp32: per-tensor
    weight scales (``quantize_dynamic``'s default) and per-channel weight scales."""
    torch.set_num_threads(threads)
    models, quantize_seconds = {"fp32": accurate}, {}
    for variant in INT8_VARIANTS:
        began = time.perf_counter()
        models[variant] = _quantized(accurate, variant)
        quantize_seconds[variant] = time.perf_counter() - began
    linear = [n for n, m in accurate.named_modules() if isinstance(m, nn.Linear)]
    dynamic = torch.ao.nn.quantized.dynamic.Linear
    quantized_names = [n for n, m in models[INT8_VARIANTS[0]].named_modules()
                       if isinstance(m, dynamic)]  # fmt: skip
    rec = {k: _recognizer(m) for k, m in models.items()}
    rtf = _int8_rtf(rec, threads, quick)
    clips = [_int8_clip(models, rec, *clip) for clip in INT8_CLIPS]
    (extractor,) = accurate.frontend.extractors.values()
    ev = None if not eval_dir else _int8_eval(rec, tuple(accurate.labels), about["trained"],
                                              eval_dir, eval_corpus, eval_limit)  # fmt: skip
    return INT8_NOTES | asdict(Int8(
        quantize_seconds, len(linear), len(quantized_names),
        sum(".encoder." in n for n in quantized_names),
        {k: _state_mb(m) for k, m in models.items()}, rtf, clips,
        _int8_summary(clips, extractor.settings.layers), ev))  # fmt: skip


# --------------------------------------------------------------------------- run and report


VERSIONS = ("emofuse", "torch", "numpy", "transformers", "soundfile", "soxr")


NOTES = [
    "accurate and fast are timed through EmotionRecognizer.predict(array, "
    "sample_rate=16000) with TorchBackend(device='cpu'): the accurate model's windows "
    "are 10 s every 5 s (a 10 s clip is one window), the fast model's 3 s every 1.5 s "
    "(a 10 s clip is 6 windows in one batch).",
    "Systems are timed in alternating rounds; latencies are medians.",
    "predict_many files/s includes reading and decoding each WAV file (OS page cache).",
    "timeline: a fresh process forked from a small shell; peak RSS = its ru_maxrss, "
    "VmHWM beside it. MB = 10**6 bytes.",
]


def build_models(model: str | None) -> dict:
    """The accurate, fast and wav2vec2 models, with what each is (``about``)."""
    accurate, about = build_accurate(model)
    fast, about_fast = build_fast()
    wav2vec2 = build_wav2vec2()
    w2v_params = sum(p.numel() for p in wav2vec2.parameters())
    print(f"accurate: {about['source']} ({about['parameters']:,} parameters, "
          f"{about['head_parameters']:,} in the head); fast: {about_fast['parameters']:,} "
          f"parameters; wav2vec2: {w2v_params:,} parameters")  # fmt: skip
    about_w2v = {
        "source": "transformers Wav2Vec2Model(Wav2Vec2Config()), random init, "
        "all 12 layers, raw forward under inference_mode",
        "parameters": w2v_params,
    }
    return {"accurate": accurate, "fast": fast, "wav2vec2": wav2vec2,
            "about": {"accurate": about, "fast": about_fast, "wav2vec2": about_w2v}}  # fmt: skip


def measure_all(models: dict, workdir: Path, args: argparse.Namespace) -> dict:
    """RTF, the accurate model's parts, predict_many throughput, int8 and timeline memory."""
    accurate, about, quick = models["accurate"], models["about"]["accurate"], args.quick
    with common.torch_threads_kept():
        rtf = measure_rtf(accurate, models["fast"], models.pop("wav2vec2"), args.threads, quick)
        parts = measure_parts(accurate, args.threads, quick)
        paths = common.write_clips(workdir / "clips", QUICK_MANY_FILES if quick else MANY_FILES,
                                   MANY_SECONDS, sample_rate=SAMPLE_RATE,
                                   audio_format="WAV")  # fmt: skip
        throughput = measure_throughput({"fast": models["fast"], "accurate": accurate}, paths,
                                        quick)  # fmt: skip
        shutil.rmtree(workdir / "clips")
        limit = args.eval_limit or (QUICK_EVAL_LIMIT if quick else None)
        int8 = measure_int8(accurate, about, args.threads, quick, args.eval_dir,
                            args.eval_corpus, limit)  # fmt: skip
    memory = measure_memory(workdir, accurate, about, args.threads, quick)
    return {"rtf": rtf, "accurate_parts": parts, "throughput": throughput, "memory": memory,
            "int8": int8}  # fmt: skip


def run(args: argparse.Namespace) -> dict:
    started = common.Run.start()
    background_before = common.background_processes("bench/accurate.py")
    models = build_models(args.model)
    workdir = Path(tempfile.mkdtemp(prefix="emofuse-bench-accurate-"))
    try:
        measured = measure_all(models, workdir, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results = started.header(
        "accurate", args.quick, common.package_versions(VERSIONS), command=True
    ) | {
        "background_processes_before": background_before,
        "background_processes_after": common.background_processes("bench/accurate.py"),
        "sample_rate": SAMPLE_RATE,
        "signal": "emofuse.testing.synthetic_voice (gliding harmonic tone, syllable-rate "
        "loudness, noise), 16-bit WAV for the file measurements",
        "models": models["about"],
        "notes": NOTES,
        **measured,
        "elapsed_seconds": started.elapsed(),
    }
    results["targets"] = check_targets(results)
    return results


def check_targets(results: dict) -> list[dict]:
    """RTF, files/s and timeline peak RSS against their targets, as the JSON's dicts."""
    rtf = results["rtf"]["systems"]["accurate"]["rtf"]
    threads = results["rtf"]["threads"]
    two = [m for m in results["throughput"] if m["model"] == "accurate" and m["threads"] == 2]
    best = max(two, key=lambda m: m["files_per_second_median"])
    memory = results["memory"]
    peak = memory["report"]["peak"]["ru_maxrss_mb"]
    checks = [
        common.Check.of(f"accurate RTF <= {TARGET_RTF} (10 s clip, batch 1, {threads} thread(s))",
                        f"{rtf:.4f}", "predict, fp32", rtf <= TARGET_RTF),
        common.Check.of(f"accurate predict_many >= {TARGET_FILES_PER_SECOND:g} files/s (3 s "
                        "clips, 2 threads)", f"{best['files_per_second_median']:.1f}",
                        f"batch {best['batch_size']}",
                        best["files_per_second_median"] >= TARGET_FILES_PER_SECOND),
        common.Check.of(f"accurate timeline peak RSS < {TARGET_PEAK_RSS_MB:g} MB "
                        f"({memory['audio_seconds'] / 60:g} min file)", f"{peak:.0f} MB",
                        f"{memory['threads']} thread(s)", peak < TARGET_PEAK_RSS_MB),
    ]  # fmt: skip
    return [check.to_dict() for check in checks]


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.0f} k"


MODEL_LINES = {
    "bundled": "the bundled model (`emofuse/pretrained/accurate.pt`)",
    "untrained-config": "an UNTRAINED pipeline of `configs/accurate.yaml` (no bundled accurate "
    "model installed; real Whisper base weights, random head; speed does not depend on "
    "training)",
}


def _header(results: dict) -> list[str]:
    """Title, machine and load, the three models and the command."""
    machine, versions, models = results["machine"], results["versions"], results["models"]
    about = models["accurate"]
    quick = " (QUICK smoke run: too few repetitions to quote)" if results["quick"] else ""
    model_line = MODEL_LINES.get(about["source"], f"the model file `{about['path']}`")
    return [
        f"# emofuse `accurate` model: speed, throughput, memory, int8{quick}",
        f"Machine: {machine['cpu_model']}, {machine['usable_cores']} usable cores; Python "
        f"{machine['python']}, emofuse {versions['emofuse']}, torch {versions['torch']}, "
        f"transformers {versions['transformers']}. Load average (1/5/15 min) before "
        f"{results['load_average_before']}, after {results['load_average_after']}; other "
        f"processes kept {results['other_processes_cores']} cores busy on average during the "
        f"run ({len(results['background_processes_before'])} busy processes at the start). "
        "Numbers measured on a loaded machine are pessimistic and noisy; compare systems by "
        "the ratios within one table (timed in alternating rounds), not across runs.",
        f"Accurate model: {model_line}; {about['parameters']:,} parameters "
        f"({about['head_parameters']:,} trained: normaliser + head), evaluation windows "
        f"{about['eval_windows']['window_seconds']:g} s. Fast model: "
        f"`emofuse/pretrained/fast.pt`, {models['fast']['parameters']:,} parameters, "
        f"{models['fast']['eval_windows']['window_seconds']:g} s windows. wav2vec2: "
        f"`Wav2Vec2Model(Wav2Vec2Config())`, random init, {models['wav2vec2']['parameters']:,} "
        "parameters, all 12 layers. Command: "
        f"`{results['command']}`.",
    ]


def _rtf_section(results: dict) -> list[str]:
    rtf, models = results["rtf"], results["models"]
    rows = [
        [name, _fmt_params(models[name]["parameters"]), f"{s['median_ms']:.1f}",
         f"{s['p90_ms']:.1f}", f"{s['rtf']:.4f}",
         f"{s['median_ms'] / rtf['systems']['accurate']['median_ms']:.2f}", s["runs"]]
        for name, s in rtf["systems"].items()
    ]  # fmt: skip
    return [
        f"## RTF: one {rtf['clip_seconds']:g} s clip, batch 1, {rtf['threads']} thread(s)",
        "accurate and fast via `EmotionRecognizer.predict(array, sample_rate=16000)`; wav2vec2 "
        "as a raw encoder forward. RTF = median latency / audio duration. Other processes kept "
        f"{rtf['other_processes_cores']} cores busy during this table.",
        common.markdown_table(
            ["system", "params", "median ms", "p90 ms", "RTF", "x accurate", "runs"], rows
        ),
    ]


def _parts_section(results: dict) -> list[str]:
    parts = results["accurate_parts"]
    rows = [
        [name, f"{s['median_ms']:.1f}", f"{100 * s['share_of_pipeline']:.0f}%", s["runs"]]
        for name, s in parts["parts"].items()
    ]
    return [
        f"## Where the accurate model's time goes ({parts['clip_seconds']:g} s clip, "
        f"{parts['threads']} thread(s))",
        "Each part timed on its own, all in alternating rounds; share = median / pipeline "
        "forward median. The stream output is "
        f"{'' if parts['stream_output_contiguous'] else 'not '}contiguous "
        f"({parts['stream_output_shape']}); the diagnostic row copies it to contiguous memory "
        "before the head (copy included).",
        common.markdown_table(["part", "median ms", "share", "runs"], rows),
    ]


THROUGHPUT_HEADERS = ["model", "threads", "batch", "files/s (median)", "files/s (best)",
                      "audio s / s", "passes", "cores busy with other processes"]  # fmt: skip


def _throughput_section(results: dict) -> list[str]:
    rows = [
        [m["model"], m["threads"], m["batch_size"], f"{m['files_per_second_median']:.1f}",
         f"{m['files_per_second_best']:.1f}", f"{m['audio_seconds_per_second_median']:.0f}",
         m["passes"], m["other_processes_cores"]]
        for m in results["throughput"]
    ]  # fmt: skip
    return [
        f"## `predict_many` throughput ({results['throughput'][0]['files']} WAV files of "
        f"{MANY_SECONDS:g} s, decoding included)",
        common.markdown_table(THROUGHPUT_HEADERS, rows),
    ]


MEMORY_HEADERS = ["file min", "batch", "after imports", "after load", "peak", "peak VmHWM",
                  "segments", "silent", "wall s", "RTF",
                  "cores busy with other processes"]  # fmt: skip


def _memory_section(results: dict) -> list[str]:
    memory = results["memory"]
    rows = [
        [f"{r['audio_seconds'] / 60:g}", r["batch_size"] or "default",
         f"{r['after_imports']['ru_maxrss_mb']:.0f}", f"{r['after_load']['ru_maxrss_mb']:.0f}",
         f"{r['peak']['ru_maxrss_mb']:.0f}",
         f"{r['peak']['vm_hwm_mb']:.0f}" if r["peak"]["vm_hwm_mb"] else "n/a",
         r["segments"], r["silent_segments"], f"{r['wall_seconds']:.1f}", f"{r['rtf']:.4f}",
         r["other_processes_cores"]]
        for r in [memory["report"], *memory["smaller_batches"]]
    ]  # fmt: skip
    return [
        f"## `timeline` memory (accurate model, {memory['threads']} thread(s))",
        "A fresh process iterates `recognizer.timeline(path)` "
        f"({memory['timeline_defaults']}) over a 16 kHz WAV file; the first row is the target "
        "measurement, the others the same on a shorter file with smaller `batch_size` (memory "
        "does not grow with the file's length). RSS in MB (10^6 bytes) from `ru_maxrss` after "
        "the imports, after loading the model and at the end (the peak); `VmHWM` is the "
        "kernel's high-water mark of the same process.",
        common.markdown_table(MEMORY_HEADERS, rows),
    ]


def _int8_rtf_section(int8: dict) -> list[str]:
    q = int8["rtf"]
    rows = [
        [name, f"{s['median_ms']:.1f}", f"{s['p90_ms']:.1f}", f"{s['rtf']:.4f}",
         f"{s['speedup_over_fp32']:.2f}x", s["runs"], f"{int8['state_dict_mb'][name]:.1f}"]
        for name, s in q["systems"].items()
    ]  # fmt: skip
    return [
        "## int8 dynamic quantisation of the accurate model",
        f"`quantize_dynamic(pipeline, {{nn.Linear}}, dtype=torch.qint8)` (`int8`, per-tensor "
        "weight scales) and the same with `per_channel_dynamic_qconfig` (`int8-perchannel`): "
        f"{int8['quantized_linear_layers']} of {int8['linear_layers']} Linear layers quantised "
        f"({int8['quantized_in_encoder']} in the Whisper encoder); the conv stem and the head's "
        f"convolutions stay fp32. RTF side by side ({q['clip_seconds']:g} s clip, "
        f"{q['threads']} thread(s), alternating rounds; state dict size as saved by "
        "`torch.save`):",
        common.markdown_table(
            ["model", "median ms", "p90 ms", "RTF", "speed-up", "runs", "state dict MB"], rows
        ),
    ]


CLOSENESS_HEADERS = ["variant", "clip s", "max abs prob. diff", "same label",
                     "hidden-state rel. L2 error by layer", "min frame cosine"]  # fmt: skip


def _int8_closeness_section(int8: dict, trained: bool) -> list[str]:
    rows = [
        [v, f"{c['seconds']:g}", f"{d['max_abs_probability_difference']:.1e}",
         "yes" if d["same_label"] else "NO",
         ", ".join(f"{k}: {x['relative_l2_error']:.3f}" for k, x in d["hidden_states"].items()),
         f"{min(x['min_frame_cosine'] for x in d['hidden_states'].values()):.4f}"]
        for v in int8["summary"]
        for c in int8["clips"]
        for d in [c["variants"][v]]
    ]  # fmt: skip
    untrained_note = (
        " The accurate model here is untrained: its head gives near-uniform probabilities "
        f"(top {max(c['fp32_top_probability'] for c in int8['clips']):.3f} for 7 classes), so "
        "the probability differences say little; the hidden-state error is the measure that "
        "carries over to the trained model."
        if not trained
        else ""
    )
    return [
        "Closeness to fp32 on synthetic clips: largest |p_fp32 - p_int8| over the classes, the "
        "same top label, relative L2 error of the Whisper hidden states per layer, and the "
        f"lowest per-frame cosine similarity.{untrained_note}",
        common.markdown_table(CLOSENESS_HEADERS, rows),
    ]


def _eval_section(ev: dict | None) -> list[str]:
    if not ev:
        return ["No `--eval-dir`/`--eval-corpus` given: UA not measured, no keep/drop verdict."]
    rows = [
        [k, f"{100 * s['ua']:.2f}", f"{100 * s['wa']:.2f}",
         f"{s['ua_change_points']:+.2f}" if "ua_change_points" in s else "",
         f"{100 * s['prediction_agreement']:.1f}%" if "prediction_agreement" in s else "",
         f"{s['files_per_second']:.1f}"]
        for k, s in ev["systems"].items()
    ]  # fmt: skip
    return [
        f"UA on `{ev['corpus']}` ({ev['files']} files, task `{ev['task']}`"
        f"{', an even spread over the corpus' if ev['limit'] else ''}):",
        common.markdown_table(
            ["model", "UA", "WA", "UA change (points)", "agreement with fp32", "files/s"], rows
        ),
        "**Verdict**: " + "; ".join(ev["verdicts"].values()) + ".",
    ]


def render_markdown(results: dict) -> str:
    """The report of a run (its JSON, as written or read back): one section per measurement."""
    int8 = results["int8"]
    sections = [
        *_header(results),
        "## Targets",
        common.checks_table(results["targets"]),
        *_rtf_section(results),
        *_parts_section(results),
        *_throughput_section(results),
        *_memory_section(results),
        *_int8_rtf_section(int8),
        *_int8_closeness_section(int8, results["models"]["accurate"]["trained"]),
        *_eval_section(int8["eval"]),
    ]
    return "\n\n".join(sections)


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__, quick="few repetitions (smoke run)")
    parser.add_argument("--model", help="model file (default: bundled accurate, else untrained)")
    parser.add_argument("--threads", type=int, default=1, help="for RTF, int8 and the timeline")
    parser.add_argument("--eval-dir", help="corpus root for the int8 UA check")
    parser.add_argument("--eval-corpus", help="corpus name (emodb, emovo, ...)")
    parser.add_argument("--eval-limit", type=int, help=f"most files (--quick: {QUICK_EVAL_LIMIT})")
    args = parser.parse_args(argv)  # fmt: skip
    if bool(args.eval_dir) != bool(args.eval_corpus):
        parser.error("--eval-dir and --eval-corpus go together")
    if args.threads < 1 or (args.eval_limit is not None and args.eval_limit < 1):
        parser.error("--threads and --eval-limit must be positive")
    results = run(args)
    common.report("accurate", results, render_markdown, args)


if __name__ == "__main__":
    main()
