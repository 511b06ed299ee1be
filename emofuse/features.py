"""Features as data: a :class:`FeatureSpec` per feature, and the feature kinds that know how
to compute each feature's frames, normalise them and which branch of the model reads them.

A feature is one array per utterance, ``(dims, frames)`` at its own frame rate (lhotse's
``TemporalArray``). The experiment config lists the features (``features:``); the pipeline, the
cache, batching, crops, augmentation, export and inference iterate over that list. A new feature
kind is one class registered with :func:`register_feature_kind` (in any module) plus one config
entry. Every kind is a *frozen* front end: its frames are computed once per file and cached,
and no gradient flows into it; what learns is the feature's branch in the model.

Kinds: ``mfcc``, ``logmel`` and ``prosody`` (computed features) and ``whisper`` (a frozen
pretrained encoder's hidden states, :mod:`emofuse.signal.whisper`; its weights come from a
weight package or directory when training and from the model file when predicting).

>>> specs = default_features()
>>> [(s.name, s.kind, make_kind(s).dims, make_kind(s).frame_rate) for s in specs]
[('mfcc', 'mfcc', 40, 100.0), ('logmel', 'logmel', 64, 100.0)]
>>> FeatureSpec.from_dict({"kind": "prosody"}).branch
{'channels': 32}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from torch import Tensor, nn

from emofuse.model import BranchSpec
from emofuse.model.branches import BRANCH_TYPES
from emofuse.signal.prosody import N_PROSODY, Prosody
from emofuse.signal.transforms import (
    MFCC,
    FeatureNormalizer,
    LogMel,
    MfccSettings,
    SpectralSettings,
)
from emofuse.signal.whisper import WhisperFrontEnd, WhisperSettings

__all__ = [
    "FeatureSpec",
    "FeatureKind",
    "FEATURE_KINDS",
    "register_feature_kind",
    "make_kind",
    "default_features",
    "feature_spec",
    "FeatureFrontEnd",
    "ProsodySettings",
    "WhisperSettings",
    "branch_spec",
    "check_features",
    "frame_rates",
]


class FeatureKind:
    """What a feature kind knows: its frames, normaliser, branch and augmentation.

    Subclasses set ``kind`` (the config name), ``settings_type`` (a frozen dataclass of its own
    settings), ``branch_type`` (a :data:`emofuse.model.branches.BRANCH_TYPES` key) and
    ``default_channels``, and implement :attr:`dims`, :meth:`extractor` and
    :meth:`apply_gain`. ``settings`` must have ``sample_rate`` and ``hop_length``.
    """

    kind: ClassVar[str]
    settings_type: ClassVar[type]
    branch_type: ClassVar[str]
    default_channels: ClassVar[int]
    freq_maskable: ClassVar[bool] = False  # SpecAugment frequency masks apply to its rows
    follows_grid: ClassVar[bool] = True  # its hop_length can be set to another feature's

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    @property
    def dims(self) -> int:
        """Rows per frame."""
        raise NotImplementedError

    @property
    def row_groups(self) -> int:
        """Equal groups of rows the branch combines (a Whisper feature's layers); 1 otherwise."""
        return 1

    def cache_parts(self) -> list[tuple[dict, slice]]:
        """What the cache stores separately: (settings that identify a part, its rows). One
        part by default; a Whisper feature stores each layer on its own, so features with other
        layer choices reuse it."""
        return [(asdict(self.settings), slice(None))]

    @property
    def sample_rate(self) -> int:
        return self.settings.sample_rate

    @property
    def hop_length(self) -> int:
        """Samples between frames."""
        return self.settings.hop_length

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.hop_length

    def extractor(self) -> nn.Module:
        """``(waveforms (B, S), lengths (B,), memo) -> (frames (B, dims, T), frame lengths)``."""
        raise NotImplementedError

    def load_weights(self, extractor: nn.Module) -> None:
        """Fill a pretrained front end's weights (no-op for computed features)."""

    def normalizer(self) -> nn.Module:
        """Per-row standardisation fitted on training frames."""
        return FeatureNormalizer(self.dims)

    def apply_gain(self, frames: Tensor, gain: Tensor) -> None:
        """In place: the exact effect on raw ``frames`` (B, dims, T) of scaling each waveform's
        power by ``exp(gain)`` (``gain`` (B,), natural-log units)."""
        raise NotImplementedError


FEATURE_KINDS: dict[str, type[FeatureKind]] = {}


def register_feature_kind(cls: type[FeatureKind]) -> type[FeatureKind]:
    """Class decorator: make ``cls`` available as ``kind: <cls.kind>`` in configs."""
    if cls.kind in FEATURE_KINDS and FEATURE_KINDS[cls.kind] is not cls:
        raise ValueError(f"feature kind {cls.kind!r} is already registered")
    FEATURE_KINDS[cls.kind] = cls
    return cls


@register_feature_kind
class LogMelKind(FeatureKind):
    """Log-Mel spectrogram rows; the paper's 2D-CNN feature."""

    kind = "logmel"
    settings_type = SpectralSettings
    branch_type = "conv2d"
    default_channels = 16
    freq_maskable = True

    @property
    def dims(self) -> int:
        return self.settings.n_mels

    def extractor(self) -> nn.Module:
        return LogMel(self.settings)

    def apply_gain(self, frames: Tensor, gain: Tensor) -> None:
        frames += gain[:, None, None]  # every log-Mel bin moves by the log power change


@register_feature_kind
class MfccKind(FeatureKind):
    """MFCC rows; the paper's 1D-CNN feature."""

    kind = "mfcc"
    settings_type = MfccSettings
    branch_type = "conv1d"
    default_channels = 128

    @property
    def dims(self) -> int:
        return self.settings.n_mfcc

    def extractor(self) -> nn.Module:
        return MFCC(self.settings)

    def apply_gain(self, frames: Tensor, gain: Tensor) -> None:
        # The orthonormal DCT's constant row: c0 moves by sqrt(n_mels) times the log-Mel shift.
        frames[:, 0] += gain[:, None] * math.sqrt(self.settings.n_mels)


@dataclass(frozen=True)
class ProsodySettings:
    """Prosody frames on the grid of a ``hop_length`` front end."""

    sample_rate: int = 16000
    hop_length: int = 160

    def __post_init__(self) -> None:
        for name in ("sample_rate", "hop_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(
                    f"ProsodySettings.{name} must be a positive integer, got {value!r}"
                )


@register_feature_kind
class ProsodyKind(FeatureKind):
    """Energy (dB), pitch (semitones) and voicing per frame (:mod:`emofuse.signal.prosody`)."""

    kind = "prosody"
    settings_type = ProsodySettings
    branch_type = "conv1d"
    default_channels = 32

    @property
    def dims(self) -> int:
        return N_PROSODY

    def extractor(self) -> nn.Module:
        return Prosody(self.settings.sample_rate, self.settings.hop_length)

    def apply_gain(self, frames: Tensor, gain: Tensor) -> None:
        frames[:, 0] += gain[:, None] * 10 / math.log(10)  # the energy row is in dB


@register_feature_kind
class WhisperKind(FeatureKind):
    """Hidden states of chosen layers of a frozen Whisper encoder (:mod:`emofuse.signal.whisper`)
    at 50 frames/s, the layers stacked on the row axis; its branch learns a softmax-weighted
    layer sum."""

    kind = "whisper"
    settings_type = WhisperSettings
    branch_type = "layers"
    default_channels = 256
    follows_grid = False  # 50 frames/s, fixed by the encoder

    @property
    def dims(self) -> int:
        return len(self.settings.layers) * self.settings.width

    @property
    def row_groups(self) -> int:
        return len(self.settings.layers)

    def cache_parts(self) -> list[tuple[dict, slice]]:
        width = self.settings.width
        return [({**asdict(self.settings), "layers": [k]}, slice(i * width, (i + 1) * width))
                for i, k in enumerate(self.settings.layers)]  # fmt: skip

    def extractor(self) -> nn.Module:
        return WhisperFrontEnd(self.settings)

    def load_weights(self, extractor: nn.Module) -> None:
        from emofuse.signal.whisper_weights import load_encoder_weights

        load_encoder_weights(extractor.encoder, self.settings)

    def apply_gain(self, frames: Tensor, gain: Tensor) -> None:
        """No exact effect on cached hidden states: level changes of this feature come from the
        waveform, so gain augmentation leaves its frames as they are."""


@dataclass(frozen=True)
class FeatureSpec:
    """One feature of an experiment: its name, kind, the kind's settings (complete, with
    defaults filled in) and its branch settings (``channels``: the branch's convolution width;
    ``type``, only when given: a branch type other than the kind's, e.g. ``identity``).
    """

    name: str
    kind: str
    settings: dict = field(default_factory=dict)
    branch: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> FeatureSpec:
        """Validate a config entry and fill in the kind's defaults."""
        if not isinstance(values, Mapping):
            raise ValueError(f"a feature entry must be a mapping with a kind, got {values!r}")
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(
                f"feature entry {dict(values)}: unknown key(s) {', '.join(sorted(unknown))} "
                "(known: name, kind, settings, branch)"
            )
        kind = values.get("kind")
        if kind not in FEATURE_KINDS:
            raise ValueError(
                f"unknown feature kind {kind!r}; known: {', '.join(sorted(FEATURE_KINDS))}"
            )
        name = values.get("name", kind)
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(
                f"feature name must be an identifier (letters, digits, _), got {name!r}"
            )
        cls_kind = FEATURE_KINDS[kind]
        settings, branch = values.get("settings") or {}, values.get("branch") or {}
        for section, given in (("settings", settings), ("branch", branch)):
            if not isinstance(given, Mapping):
                raise ValueError(f"feature {name!r}: {section} must be a mapping, got {given!r}")
        known = {f.name for f in fields(cls_kind.settings_type)}
        if set(settings) - known:
            raise ValueError(
                f"feature {name!r} ({kind}): unknown setting(s) "
                f"{', '.join(sorted(set(settings) - known))} (known: {', '.join(sorted(known))})"
            )
        if set(branch) - {"channels", "type"}:
            raise ValueError(
                f"feature {name!r}: unknown branch setting(s) "
                f"{', '.join(sorted(set(branch) - {'channels', 'type'}))} (known: channels, type)"
            )
        if "type" in branch and branch["type"] not in BRANCH_TYPES:
            raise ValueError(f"feature {name!r}: unknown branch type {branch['type']!r}; known: "
                             f"{', '.join(sorted(BRANCH_TYPES))}")  # fmt: skip
        try:
            full = {
                key: list(value) if isinstance(value, tuple) else value  # YAML-safe
                for key, value in asdict(cls_kind.settings_type(**settings)).items()
            }
        except (TypeError, ValueError) as error:
            raise ValueError(f"feature {name!r} ({kind}): {error}") from None
        channels = branch.get("channels", cls_kind.default_channels)
        if not isinstance(channels, int) or isinstance(channels, bool) or channels <= 0:
            raise ValueError(f"feature {name!r}: branch channels must be a positive integer, "
                             f"got {channels!r}")  # fmt: skip
        chosen = {"type": branch["type"]} if "type" in branch else {}  # default: the kind's
        return cls(name, kind, full, {"channels": channels, **chosen})

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "settings": dict(self.settings),
                "branch": dict(self.branch)}  # fmt: skip


def feature_spec(kind: str, name: str | None = None, **settings: Any) -> FeatureSpec:
    """A feature of ``kind`` with default settings except ``settings`` (``channels`` goes to the
    branch)."""
    branch = {"channels": settings.pop("channels")} if "channels" in settings else {}
    return FeatureSpec.from_dict({"kind": kind, "name": name or kind, "settings": settings,
                                 "branch": branch})  # fmt: skip


def default_features() -> list[FeatureSpec]:
    """The paper's two features: MFCC (1D CNN) and log-Mel (2D CNN); docs/design.md §4.1."""
    return [feature_spec("mfcc"), feature_spec("logmel")]


def make_kind(spec: FeatureSpec) -> FeatureKind:
    """The kind object of ``spec``, with its settings."""
    cls = FEATURE_KINDS[spec.kind]
    return cls(cls.settings_type(**spec.settings))


def branch_spec(spec: FeatureSpec) -> BranchSpec:
    """The model branch that reads feature ``spec``."""
    kind = make_kind(spec)
    branch_type = spec.branch.get("type", kind.branch_type)
    return BranchSpec(spec.name, branch_type, kind.dims, spec.branch["channels"],
                      groups=kind.row_groups)  # fmt: skip


def check_features(specs: Sequence[FeatureSpec]) -> list[FeatureSpec]:
    """At least one feature, distinct names, one sample rate."""
    specs = list(specs)
    names = [s.name for s in specs]
    if not specs or len(set(names)) != len(names):
        raise ValueError(f"need one or more features with distinct names, got {names}")
    rates = {make_kind(s).sample_rate for s in specs}
    if len(rates) > 1:
        raise ValueError(f"features {names} use different sample rates {sorted(rates)}; use one")
    return specs


class FeatureFrontEnd(nn.Module):
    """Every feature's frames from one batch of waveforms.

    ``forward``: padded waveforms (B, S), lengths (B,) -> ``{name: (frames (B, dims, T_s),
    frame lengths (B,))}``, in feature order; features sharing work (MFCC and log-Mel of the same
    spectral settings) compute it once. ``pretrained=False`` leaves pretrained front ends
    (Whisper) empty, for a model file's weights to fill.
    """

    def __init__(self, specs: Sequence[FeatureSpec], *, pretrained: bool = True) -> None:
        super().__init__()
        self.specs = check_features(specs)
        self.kinds = {s.name: make_kind(s) for s in self.specs}
        self.sample_rate = next(iter(self.kinds.values())).sample_rate
        self.extractors = nn.ModuleDict({n: k.extractor() for n, k in self.kinds.items()})
        if pretrained:
            for name, kind in self.kinds.items():
                kind.load_weights(self.extractors[name])
        for parameter in self.extractors.parameters():
            parameter.requires_grad_(False)  # frozen front ends

    def forward(self, waveforms: Tensor, lengths: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
        memo: dict = {}
        return {name: extract(waveforms, lengths, memo)
                for name, extract in self.extractors.items()}  # fmt: skip


def frame_rates(specs: Sequence[FeatureSpec]) -> dict[str, float]:
    """Frames per second of each feature."""
    return {s.name: make_kind(s).frame_rate for s in specs}
