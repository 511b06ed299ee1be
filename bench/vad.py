"""Silero VAD in emofuse (:mod:`emofuse.signal.vad`): speed, real speech kept, non-speech rejected.

Speed of ``SpeechDetector.probabilities`` (64 x 3 s, one at a time, 60 s); with the shared
corpora, every EmoDB, RAVDESS and EMOVO file through ``speech_regions`` (files dropped, speech
share); the maximum speech probability of synthetic non-speech signals.

    python bench/vad.py [--quick]    # writes bench/results/vad.{json,md}
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import _common as common
import numpy as np
import torch

from emofuse.signal.audio import load_audio
from emofuse.signal.vad import CHUNK, SAMPLE_RATE, SpeechDetector
from emofuse.signal.vad_segmenter import VADSettings, speech_regions
from emofuse.testing import synthetic_speech, synthetic_voice

CORPUS_GLOBS = {"emodb": "wav/*.flac", "ravdess": "**/*.flac", "emovo": "**/*.flac"}


def time_speed(detector: SpeechDetector, quick: bool) -> dict:
    clips = [synthetic_speech(3.0, seed=seed) for seed in range(64)]
    long = synthetic_speech(60.0, seed=99)
    runs = 3 if quick else 15
    timings = common.time_interleaved(
        {
            "64 x 3 s, one batch": lambda: detector.probabilities(clips),
            "64 x 3 s, one at a time": lambda: [detector.probabilities([c]) for c in clips],
            "1 x 60 s": lambda: detector.probabilities([long]),
        },
        runs=runs,
        warmup=1,
    )
    audio = {"64 x 3 s, one batch": 192.0, "64 x 3 s, one at a time": 192.0, "1 x 60 s": 60.0}
    for name, timing in timings.items():
        timing["audio_seconds"] = audio[name]
        timing["ms_per_audio_second"] = timing["median_ms"] / audio[name]
        timing["real_time_factor"] = timing["median_ms"] / 1e3 / audio[name]
    return timings


@dataclass(frozen=True)
class CorpusRun:
    """A corpus through ``speech_regions``: files dropped, speech shares (a row of the JSON)."""

    files: int
    audio_minutes: float
    dropped: int
    dropped_files: list
    mean_speech_share: float
    min_speech_share: float
    files_under_50pct_speech: int
    wall_seconds_incl_decoding: float


def corpus_run(detector: SpeechDetector, corpus: str, limit: int | None) -> dict | None:
    folder = common.CORPORA / corpus
    files = sorted(folder.glob(CORPUS_GLOBS[corpus])) if folder.is_dir() else []
    if not files:
        return None
    files = files[:: max(1, len(files) // limit)][:limit] if limit else files
    shares, dropped, seconds, began = [], [], 0.0, time.perf_counter()
    for start in range(0, len(files), 64):
        batch = files[start : start + 64]
        waves = [load_audio(path, SAMPLE_RATE) for path in batch]
        for path, wave, probs in zip(batch, waves, detector.probabilities(waves), strict=True):
            regions = speech_regions(probs, wave.size, VADSettings())
            share = sum(end - begin for begin, end in regions) / wave.size
            shares.append(share)
            seconds += wave.size / SAMPLE_RATE
            if not regions:
                dropped.append(
                    {"file": str(path.relative_to(common.CORPORA)), "max_prob": float(probs.max())}
                )
    share, wall = np.array(shares), time.perf_counter() - began
    return asdict(CorpusRun(len(files), seconds / 60, len(dropped), dropped, float(share.mean()),
                            float(share.min()), int(np.sum(share < 0.5)), wall))  # fmt: skip


def nonspeech(detector: SpeechDetector) -> dict:
    n, rng = 5 * SAMPLE_RATE, np.random.default_rng(0)
    t = np.arange(n) / SAMPLE_RATE
    clicks = np.zeros(n)
    clicks[:: SAMPLE_RATE // 2] = 0.9
    signals = {
        "digital silence": np.zeros(n),
        "white noise -55 dBFS": rng.standard_normal(n) * 10 ** (-55 / 20),
        "white noise -45 dBFS": rng.standard_normal(n) * 10 ** (-45 / 20),
        "white noise -20 dBFS": rng.standard_normal(n) * 10 ** (-20 / 20),
        "50 Hz hum": 0.1 * np.sin(2 * np.pi * 50 * t),
        "60 Hz hum + 4 harmonics": sum(
            0.05 / k * np.sin(2 * np.pi * 60 * k * t) for k in range(1, 6)
        ),
        "clicks every 0.5 s": clicks,
        "1 kHz tone": 0.3 * np.sin(2 * np.pi * 1000 * t),
        "emofuse.testing.synthetic_voice": synthetic_voice(5.0),
        "synthetic_speech (emofuse.testing)": synthetic_speech(5.0),
    }
    waves = [wave.astype(np.float32) for wave in signals.values()]
    out = {}
    for name, wave, probs in zip(signals, waves, detector.probabilities(waves), strict=True):
        regions = speech_regions(probs, wave.size)
        out[name] = {
            "max_prob": float(probs.max()),
            "speech_share": sum(e - s for s, e in regions) / wave.size,
        }
    return out


def measure(threads: int, quick: bool) -> dict:
    """Load the detector, time it, run it over the corpora and the synthetic signals."""
    torch.set_num_threads(threads)
    machine = common.machine_info()
    load_before, cpu_before = common.load_average(), common.cpu_snapshot()
    began = time.perf_counter()
    detector = SpeechDetector.load()
    load_seconds = time.perf_counter() - began
    speed = time_speed(detector, quick)
    corpora = {
        name: corpus_run(detector, name, 20 if quick else None)
        for name in ("emodb", "ravdess", "emovo")
    }
    synthetic = nonspeech(detector)
    cpu_after = common.cpu_snapshot()
    return {
        "machine": machine,
        "threads": threads,
        "load_average_before": load_before,
        "load_average_after": common.load_average(),
        "other_processes_cores": common.other_processes_cores(cpu_before, cpu_after),
        "chunk_samples": CHUNK,
        "settings": VADSettings().__dict__,
        "load_seconds": load_seconds,
        "speed": speed,
        "corpora": corpora,
        "corpora_dir": str(common.CORPORA),
        "nonspeech": synthetic,
    }


def _speed_table(speed: dict) -> str:
    rows = [
        [name, f"{t['median_ms']:.1f}", f"{t['p90_ms']:.1f}", f"{t['ms_per_audio_second']:.2f}",
         f"{(64 if '64' in name else 1) / t['median_ms'] * 1e3:.0f}"]
        for name, t in speed.items()
    ]  # fmt: skip
    return common.markdown_table(
        ["input", "median ms", "p90 ms", "ms per s of audio", "files/s"], rows
    )


def _corpora_table(corpora: dict) -> str:
    rows = [
        [name, r["files"], f"{r['audio_minutes']:.1f}", r["dropped"],
         f"{r['mean_speech_share']:.1%}", f"{r['min_speech_share']:.1%}",
         r["files_under_50pct_speech"]]
        for name, r in corpora.items()
        if r is not None
    ]  # fmt: skip
    if not rows:
        return f"(no corpora under {common.CORPORA})"
    headers = ["corpus", "files", "minutes", "dropped", "mean speech", "min speech", "< 50 %"]
    return common.markdown_table(headers, rows)


def _synthetic_table(synthetic: dict) -> str:
    rows = [[k, f"{v['max_prob']:.3f}", f"{v['speech_share']:.0%}"] for k, v in synthetic.items()]
    return common.markdown_table(["signal", "max probability", "speech share"], rows)


def render_markdown(data: dict, quick: bool = False) -> str:
    """The report of a run (its JSON, as written or read back)."""
    machine = data["machine"]
    lines = [
        f"# Silero VAD in emofuse{' (quick)' if quick else ''}",
        "",
        f"{machine['cpu_model']}, {machine['usable_cores']} usable cores, torch "
        f"{machine['torch']}, {data['threads']} thread(s); other processes kept "
        f"{data['other_processes_cores']} cores busy on average.",
        "",
        "## Speed (median)",
        "",
        _speed_table(data["speed"]),
        "",
        "## Real speech (every file, default settings)",
        "",
        _corpora_table(data["corpora"]),
        "",
        "## Synthetic signals (5 s)",
        "",
        _synthetic_table(data["nonspeech"]),
        "",
        "Corpora: EmoDB (Burkhardt et al. 2005), RAVDESS (Livingstone & Russo 2018, "
        "CC BY-NC-SA 4.0), EMOVO (Costantini et al. 2014). Weights: silero-vad (MIT, Silero Team).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = common.parser(__doc__, quick="smoke run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    data = measure(args.threads, args.quick)
    common.write_results("vad", data, render_markdown(data, args.quick), args.results_dir,
                         quick=args.quick)  # fmt: skip


if __name__ == "__main__":
    main()
