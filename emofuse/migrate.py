"""Reading version-1 settings: one ``features`` section and stream switches in the model config.

Version 1 (emofuse up to the streams redesign) described the streams implicitly: a ``features``
section (the log-Mel/MFCC settings and ``prosody: true|false``) and, in ``model``, the branch
widths and the switches ``branches: both|mfcc|logmel`` and ``prosody``. Version 2 lists the
streams. :func:`streams_from_v1` turns the first into the second, so every config YAML and model
file written by version 1 still loads with the same meaning.

>>> specs, model = streams_from_v1({"prosody": True}, {"prosody": True, "fusion": "concat"})
>>> [s.name for s in specs], model
(['mfcc', 'logmel', 'prosody'], {'fusion': 'concat'})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emofuse.signal.streams import StreamSpec, stream_spec

__all__ = ["V1_MODEL_KEYS", "is_v1", "streams_from_v1", "V1_STATE_RENAMES", "state_dict_from_v1"]

V1_FEATURE_KEYS = {"sample_rate", "n_fft", "win_length", "hop_length", "n_mels", "f_min", "f_max",
                   "n_mfcc", "log_offset", "prosody"}  # fmt: skip
V1_MODEL_KEYS = {"n_mfcc", "n_mels", "mfcc_channels", "logmel_channels", "branches", "prosody",
                 "prosody_channels"}  # fmt: skip
V1_BRANCHES = ("both", "mfcc", "logmel")


def is_v1(values: Mapping[str, Any]) -> bool:
    """True for a version-1 config mapping (a ``features`` section or v1 model keys)."""
    model = values.get("model") or {}
    return "features" in values or (isinstance(model, Mapping) and bool(V1_MODEL_KEYS & set(model)))


def streams_from_v1(
    features: Mapping[str, Any], model: Mapping[str, Any]
) -> tuple[list[StreamSpec], dict[str, Any]]:
    """Version-1 ``features`` and ``model`` sections -> the stream list and the model section
    without the stream keys."""
    unknown = set(features) - V1_FEATURE_KEYS
    if unknown:
        raise ValueError(f"unknown feature setting(s): {', '.join(sorted(unknown))}")
    spectral = {k: v for k, v in features.items() if k not in ("prosody", "n_mfcc")}
    branches = model.get("branches", "both")
    if branches not in V1_BRANCHES:
        raise ValueError(f"unknown branches {branches!r}; expected one of {list(V1_BRANCHES)}")
    prosody = model.get("prosody", False)
    if features.get("prosody", False) != prosody:
        raise ValueError(
            f"features.prosody is {features.get('prosody', False)} but model.prosody is "
            f"{prosody}; set both (or list the streams in a 'streams' section)"
        )
    if prosody and branches != "both":
        raise ValueError(f"prosody is a third stream fused with both others; it needs branches "
                         f"'both', got {branches!r}")  # fmt: skip
    specs = []
    if branches in ("both", "mfcc"):
        specs.append(stream_spec("mfcc", n_mfcc=features.get("n_mfcc", 40), **spectral,
                                 channels=model.get("mfcc_channels", 128)))  # fmt: skip
    if branches in ("both", "logmel"):
        specs.append(stream_spec("logmel", **spectral, channels=model.get("logmel_channels", 16)))
    if prosody:
        hop = {k: spectral[k] for k in ("sample_rate", "hop_length") if k in spectral}
        specs.append(stream_spec("prosody", **hop, channels=model.get("prosody_channels", 32)))
    return specs, {k: v for k, v in model.items() if k not in V1_MODEL_KEYS}


# Version-1 state-dict prefixes of the pipeline -> version 2 (``emofuse-model`` files).
V1_STATE_RENAMES = (
    ("mfcc_norm.", "normalizers.mfcc."),
    ("logmel_norm.", "normalizers.logmel."),
    ("prosody_norm.", "normalizers.prosody."),
    ("net.mfcc_branch.", "net.branches.mfcc."),
    ("net.logmel_branch.", "net.branches.logmel."),
    ("net.prosody_branch.", "net.branches.prosody."),
    ("net.fusion.mfcc_to_logmel.", "net.fusion.attend.mfcc."),
    ("net.fusion.logmel_to_mfcc.", "net.fusion.attend.logmel."),
    ("net.fusion.prosody_to_spectral.", "net.fusion.attend.prosody."),
)


def state_dict_from_v1(state: Mapping[str, Any]) -> dict[str, Any]:
    """A version-1 pipeline state dict with its keys renamed for version 2."""
    renamed = {}
    for key, value in state.items():
        for old, new in V1_STATE_RENAMES:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        renamed[key] = value
    return renamed
