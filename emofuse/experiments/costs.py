"""What a compared system costs at inference: its real-time factor on synthetic audio.

The inference real-time factor of each compared variant, timed once, at 1 torch thread, on
``RTF_AUDIO_SECONDS`` of synthetic audio (median of ``RTF_REPEATS`` runs after a warm-up), and
cached in a comparison's ``costs.json`` with the machine, so rebuilding the table never re-times:
the networks' whole forward pass (front end included), the SVM's eGeMAPS extraction (its
decision is negligible beside it; only with opensmile installed), the ``whisper-lr`` systems'
encoder front end (the logistic regression is negligible).
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch

from emofuse.config import ExperimentConfig
from emofuse.experiments import baseline, encoder_lr
from emofuse.experiments.machine import machine_description
from emofuse.experiments.systems import EncoderLrSystem, NetworkSystem, SvmSystem, get_system
from emofuse.experiments.variants import VARIANTS
from emofuse.features import FeatureFrontEnd
from emofuse.files import write_json
from emofuse.pipeline import pipeline_from_config
from emofuse.signal.whisper_weights import WhisperWeightsError

__all__ = ["RTF_AUDIO_SECONDS", "RTF_REPEATS", "RTF_THREADS", "inference_costs"]

RTF_AUDIO_SECONDS = 10.0  # synthetic audio timed per system
RTF_REPEATS = 5  # timed runs after one warm-up; the median is kept
RTF_THREADS = 1
SAMPLE_RATE = 16000  # every system reads 16 kHz audio


def _inference_call(variant: str, config: ExperimentConfig) -> Callable[[], object] | None:
    """One inference of ``variant`` (built from ``config``) on ``RTF_AUDIO_SECONDS`` of
    synthetic audio; None for the SVM without opensmile."""
    n = int(RTF_AUDIO_SECONDS * SAMPLE_RATE)
    audio = 0.1 * np.random.default_rng(0).standard_normal((1, n), dtype=np.float32)
    wave, lengths = torch.from_numpy(audio), torch.tensor([n])
    system = get_system(VARIANTS[variant].system)
    if isinstance(system, NetworkSystem):
        module = pipeline_from_config(config).eval()
    elif isinstance(system, EncoderLrSystem):  # its logistic regression costs nothing beside
        module = FeatureFrontEnd([encoder_lr.encoder_feature(config.features)]).eval()
    elif isinstance(system, SvmSystem) and importlib.util.find_spec("opensmile"):
        smile = baseline.egemaps_extractor()  # the extraction dominates the SVM's decision
        return lambda: smile.process_signal(audio[0], SAMPLE_RATE)
    else:
        return None
    return lambda: module(wave, lengths)


def _median_seconds(call: Callable[[], object]) -> float:
    """Median wall time of ``call`` over ``RTF_REPEATS`` runs after a warm-up, at
    ``RTF_THREADS`` torch threads (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(RTF_THREADS)
    try:
        with torch.inference_mode():
            call()
            times = []
            for _ in range(RTF_REPEATS):
                began = time.perf_counter()
                call()
                times.append(time.perf_counter() - began)
    finally:
        torch.set_num_threads(threads)
    return float(np.median(times))


def inference_costs(configs: Mapping[str, ExperimentConfig], path: Path) -> dict[str, dict]:
    """Each variant's inference cost (``configs``: variant -> its config), read from the JSON
    file ``path`` (a comparison's ``costs.json``) or timed now and added to it. A variant that
    cannot run here (no opensmile, no Whisper weights) stays untimed, to be tried again."""
    try:
        known = json.loads(path.read_text())["variants"]
    except (OSError, ValueError, KeyError):
        known = {}
    timed = {}
    for variant, config in configs.items():
        if variant in known:
            continue
        try:
            call = _inference_call(variant, config)
        except (ImportError, WhisperWeightsError):
            call = None
        if call is not None:
            seconds = _median_seconds(call)
            timed[variant] = {"rtf": seconds / RTF_AUDIO_SECONDS, "seconds": seconds,
                              "machine": machine_description()}  # fmt: skip
    costs = {**known, **timed}
    if timed:
        write_json({"audio_seconds": RTF_AUDIO_SECONDS, "threads": RTF_THREADS,
                    "repeats": RTF_REPEATS, "variants": costs}, path)  # fmt: skip
    return {v: costs[v] for v in configs if v in costs}
