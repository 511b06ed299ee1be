"""Helpers for tests of code that uses emofuse models: tiny pipelines and synthetic audio."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from emofuse.features import feature_spec
from emofuse.model import ModelConfig
from emofuse.pipeline import EmotionPipeline, save_pipeline

__all__ = ["TINY_LABELS", "tiny_pipeline", "save_tiny_pipeline", "synthetic_voice",
           "synthetic_speech"]

TINY_LABELS = ("neutral", "happy", "sad", "angry")


def tiny_pipeline(
    labels: tuple[str, ...] = TINY_LABELS, seed: int = 0, prosody: bool = False
) -> EmotionPipeline:
    """A randomly initialised, very small pipeline (eval mode) with non-trivial statistics.

    >>> tiny_pipeline().net.num_parameters() < 30_000
    True
    """
    torch.manual_seed(seed)
    features = [feature_spec("mfcc", channels=16), feature_spec("logmel", channels=8)]
    if prosody:
        features.append(feature_spec("prosody", channels=8))
    model = ModelConfig(n_classes=len(labels), d_model=16, n_heads=2, lstm_hidden=16)
    pipeline = EmotionPipeline(features, model, labels)
    norms = pipeline.normalizers
    with torch.no_grad():  # statistics of typical speech features, so outputs are not degenerate
        norms["mfcc"].mean.copy_(torch.linspace(-300, 0, norms["mfcc"].mean.numel()))
        norms["mfcc"].std.fill_(20.0)
        norms["logmel"].mean.fill_(-6.0)
        norms["logmel"].std.fill_(3.0)
        if prosody:  # energy dB, pitch semitones, voicing
            norms["prosody"].mean.copy_(torch.tensor([-35.0, 3.0, 0.5]))
            norms["prosody"].std.copy_(torch.tensor([15.0, 6.0, 0.3]))
    return pipeline.eval()


def save_tiny_pipeline(path: str | os.PathLike, **kwargs: object) -> Path:
    """Write :func:`tiny_pipeline` as a model file; returns the path."""
    save_pipeline(tiny_pipeline(**kwargs), path)
    return Path(path)


def synthetic_voice(
    seconds: float, sample_rate: int = 16000, pitch: float = 160.0, seed: int = 0
) -> np.ndarray:
    """A voice-like float32 signal: gliding harmonic tone, syllable-rate loudness, noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = pitch * (1 + 0.15 * np.sin(2 * np.pi * 0.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    tone = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    wave = 0.2 * tone * envelope + 0.01 * rng.standard_normal(t.size)
    return wave.astype(np.float32)


def synthetic_speech(seconds: float, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """Speech-like test signal (samples,) float32: a harmonic voice with a wandering pitch,
    syllable-rate loudness bursts and pauses, plus a little noise, so pitch tracking and voicing
    decisions do the work they do on speech (not pure noise). Like :func:`synthetic_voice`, it
    is no speech to a voice activity detector."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 140 + 30 * np.sin(2 * np.pi * 0.7 * t) + 10 * np.sin(2 * np.pi * 3.1 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 16))
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 2
    pauses = (np.sin(2 * np.pi * 0.3 * t) > -0.6).astype(np.float64)
    wave = 0.1 * voice * syllables * pauses + 0.005 * rng.standard_normal(t.size)
    return wave.astype(np.float32)
