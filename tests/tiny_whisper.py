"""A tiny random Whisper model in transformers' format, for the weight readers and features."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

WIDTH, HEADS, N_LAYERS, N_MELS = 64, 4, 3, 80


def save_tiny_whisper(directory: Path):
    """A random 3-layer, 64-wide ``WhisperModel`` (every parameter perturbed, biases and norms
    included) saved to ``directory`` with ``save_pretrained``; returns the model (eval mode).
    Skips the test when transformers is not installed."""
    transformers = pytest.importorskip("transformers")
    config = transformers.WhisperConfig(
        d_model=WIDTH, encoder_layers=N_LAYERS, encoder_attention_heads=HEADS,
        encoder_ffn_dim=4 * WIDTH, decoder_layers=1, decoder_attention_heads=4,
        decoder_ffn_dim=256, num_mel_bins=N_MELS, vocab_size=100, max_source_positions=1500,
        max_target_positions=32, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        decoder_start_token_id=1,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.WhisperModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.1)
    model.save_pretrained(directory)
    return model
