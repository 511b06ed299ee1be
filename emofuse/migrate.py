"""Reading older settings, so every config YAML and model file ever written loads with its meaning.

- Version 1 described the features implicitly: a ``features`` *mapping* (the log-Mel/MFCC
  settings and ``prosody: true|false``) and, in ``model``, the branch widths and the switches
  ``branches: both|mfcc|logmel`` and ``prosody``. :func:`features_from_v1` lists them.
- Version 2 listed them under the name ``streams`` (a word now kept for live audio);
  :func:`features_from_v2` renames the key.
- Version 3, written today, lists them under ``features``.

>>> specs, model = features_from_v1({"prosody": True}, {"prosody": True, "fusion": "concat"})
>>> [s.name for s in specs], model
(['mfcc', 'logmel', 'prosody'], {'fusion': 'concat'})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from emofuse.features import FeatureSpec, feature_spec

__all__ = ["V1_MODEL_KEYS", "is_v1", "features_from_v1", "features_from_v2", "V1_STATE_RENAMES",
           "state_dict_from_v1"]  # fmt: skip

V1_FEATURE_KEYS = {"sample_rate", "n_fft", "win_length", "hop_length", "n_mels", "f_min", "f_max",
                   "n_mfcc", "log_offset", "prosody"}  # fmt: skip
V1_MODEL_KEYS = {"n_mfcc", "n_mels", "mfcc_channels", "logmel_channels", "branches", "prosody",
                 "prosody_channels"}  # fmt: skip
V1_BRANCHES = ("both", "mfcc", "logmel")


def is_v1(values: Mapping[str, Any]) -> bool:
    """True for a version-1 config mapping (a ``features`` mapping or v1 model keys).

    >>> is_v1({"features": {"n_mels": 64}}), is_v1({"features": [{"kind": "mfcc"}]})
    (True, False)
    """
    model = values.get("model") or {}
    return isinstance(values.get("features"), Mapping) or (
        isinstance(model, Mapping) and bool(V1_MODEL_KEYS & set(model))
    )


def features_from_v2(values: Mapping[str, Any], where: str = "config") -> dict[str, Any]:
    """A config (or model file) mapping with version 2's ``streams`` list renamed ``features``.

    >>> features_from_v2({"streams": [{"kind": "mfcc"}], "model": {}})
    {'model': {}, 'features': [{'kind': 'mfcc'}]}
    """
    if "streams" not in values:
        return dict(values)
    if "features" in values:
        raise ValueError(f"{where}: both 'streams' (the version-2 name) and 'features'; keep "
                         "'features'")  # fmt: skip
    renamed = {k: v for k, v in values.items() if k != "streams"}
    renamed["features"] = values["streams"]
    return renamed


def features_from_v1(
    features: Mapping[str, Any], model: Mapping[str, Any]
) -> tuple[list[FeatureSpec], dict[str, Any]]:
    """Version-1 ``features`` and ``model`` sections -> the feature list and the model section
    without the feature keys."""
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
            f"{prosody}; set both (or list the features in a 'features' section)"
        )
    if prosody and branches != "both":
        raise ValueError(f"prosody is a third feature fused with both others; it needs branches "
                         f"'both', got {branches!r}")  # fmt: skip
    specs = []
    if branches in ("both", "mfcc"):
        specs.append(feature_spec("mfcc", n_mfcc=features.get("n_mfcc", 40), **spectral,
                                 channels=model.get("mfcc_channels", 128)))  # fmt: skip
    if branches in ("both", "logmel"):
        specs.append(feature_spec("logmel", **spectral, channels=model.get("logmel_channels", 16)))
    if prosody:
        hop = {k: spectral[k] for k in ("sample_rate", "hop_length") if k in spectral}
        specs.append(feature_spec("prosody", **hop, channels=model.get("prosody_channels", 32)))
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
