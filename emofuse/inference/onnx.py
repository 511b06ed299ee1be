"""ONNX export of a whole :class:`~emofuse.pipeline.EmotionPipeline`, and an onnxruntime backend.

The exported graph takes ``waveform`` float32 ``(batch, samples)`` (zero-padded, as the torch
pipeline expects) and ``lengths`` int64 ``(batch,)``, and returns ``probabilities`` float32
``(batch, n_classes)``; features and normalisation are inside the graph, batch and samples are
dynamic axes, and items of different lengths may share a padded batch. Beside ``model.onnx`` a
sidecar ``model.onnx.json`` (:func:`sidecar_path`) holds the labels, the sample rate, the feature
and model settings, the emofuse version, the input/output names and ``min_samples``: the
narrowest waveform array the graph was exported for (``4 * hop_length``; :class:`OnnxBackend`
zero-pads narrower batches, so clips of any length work).

Exporter: ``torch.onnx.export(..., dynamo=True)`` (``torch.export``), opset 18 by default.
``torch.export`` specialises the time axis to the example's length unless three things change;
an export-only copy of the pipeline (:class:`_ExportGraph`) makes them, all numerically
equivalent (the tests compare it with the pipeline):

- the waveform is zero-padded on the right so that every feature's frame count is visibly a
  multiple of its branch's time stride (the network pads time to such a multiple and masks
  frames past each length anyway; more zero padding changes no valid frame);
- ``nn.MaxPool1d(2)`` in the 1D branches (MFCC, prosody) becomes a pairwise maximum;
- the BiLSTM becomes one custom op, ``emofuse::bilstm``, translated to one ONNX ``LSTM`` with
  ``sequence_lens``, so each item of a padded batch is run over exactly its own frames;
- a Whisper feature's front end, while traced, always masks padded attention keys (eager mode
  leaves the mask out when no item is padded) and encodes the input as one window: a model
  with a Whisper feature takes clips of up to 30 s (``max_samples`` in the sidecar;
  :class:`OnnxBackend` trims longer zero padding and rejects longer clips).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from emofuse.files import atomic_path
from emofuse.inference.backends import BackendUnsupported
from emofuse.inference.precision import PrecisionChoice
from emofuse.migrate import features_from_v2
from emofuse.model import Conv1dBranch
from emofuse.model.temporal import BiLSTM
from emofuse.pipeline import EmotionPipeline, EvalWindows
from emofuse.signal.whisper import MAX_POSITIONS, MEL_HOP, WhisperFrontEnd

__all__ = ["export_onnx", "OnnxBackend", "OnnxModelError", "sidecar_path", "DEFAULT_OPSET"]

DEFAULT_OPSET = 18
INPUT_NAMES = ("waveform", "lengths")
OUTPUT_NAMES = ("probabilities",)
SIDECAR_FORMAT = "emofuse-onnx"


class OnnxModelError(ValueError):
    """An ONNX model or its sidecar that is missing, unreadable or not from :func:`export_onnx`."""


def sidecar_path(path: str | os.PathLike) -> Path:
    """The sidecar of an exported model: ``model.onnx`` -> ``model.onnx.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


class _PairMax(nn.Module):
    """``nn.MaxPool1d(2)`` on an even time axis, without the op that specialises export shapes."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.maximum(x[..., 0::2], x[..., 1::2])  # (B, C, T) -> (B, C, T / 2)


@torch.library.custom_op("emofuse::bilstm", mutates_args=())
def _bilstm(x: Tensor, lengths: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor) -> Tensor:
    """Packed bidirectional LSTM: (B, T, I), lengths (B,) -> (B, T, 2H), zero past each length.

    Weights in torch's gate order (i, f, g, o): ``w_ih`` (2, 4H, I), ``w_hh`` (2, 4H, H),
    ``bias`` (2, 8H) = ``[b_ih, b_hh]`` per direction. One opaque op, so ``torch.export`` does
    not unroll the LSTM over (and specialise) the time axis; it becomes one ONNX ``LSTM`` with
    ``sequence_lens`` (:func:`_bilstm_onnx`).
    """
    four_h = w_hh.shape[1]
    weights = [
        tensor
        for d in range(2)
        for tensor in (w_ih[d], w_hh[d], bias[d, :four_h], bias[d, four_h:])
    ]
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    state = x.new_zeros(2, x.shape[0], four_h // 4)
    # torch.lstm(data, batch_sizes, (h0, c0), weights, has_biases, layers, dropout, train, bidir)
    data = torch.lstm(packed.data, packed.batch_sizes, (state, state), weights, True, 1, 0.0,
                      False, True)[0]  # fmt: skip
    out = packed._replace(data=data)
    return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]


@_bilstm.register_fake
def _(x: Tensor, lengths: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor) -> Tensor:
    return x.new_empty(x.shape[0], x.shape[1], w_hh.shape[1] // 2)


def _bilstm_onnx(x, lengths, w_ih, w_hh, bias):
    """ONNX translation of :func:`_bilstm`: one bidirectional ``LSTM`` with ``sequence_lens``."""
    from onnx import TensorProto
    from onnxscript import opset18 as op

    h = w_hh.shape[2]
    blocks = [range(k * h, (k + 1) * h) for k in (0, 3, 1, 2)]  # torch (i, f, g, o) -> (i, o, f, c)
    gates = [row for block in blocks for row in block]
    y, _, _ = op.LSTM(
        op.Transpose(x, perm=[1, 0, 2]),  # (T, B, I)
        op.Gather(w_ih, op.Constant(value_ints=gates), axis=1),  # (2, 4H, I)
        op.Gather(w_hh, op.Constant(value_ints=gates), axis=1),  # (2, 4H, H)
        op.Gather(bias, op.Constant(value_ints=gates + [4 * h + g for g in gates]), axis=1),
        op.Cast(lengths, to=TensorProto.INT32),  # sequence_lens (B,)
        direction="bidirectional",
        hidden_size=h,
    )  # (T, 2, B, H)
    y = op.Transpose(y, perm=[2, 0, 1, 3])  # (B, T, 2, H)
    return op.Reshape(y, op.Constant(value_ints=[0, 0, -1]))  # (B, T, 2H)


class _ExportBiLSTM(nn.Module):
    """Export stand-in for :class:`~emofuse.model.net.BiLSTM` built on :func:`_bilstm`.

    Shape: ``(B, T, I), (B,), (B, T) -> (B, T, 2H)``, padded frames zero.
    """

    def __init__(self, lstm: nn.LSTM) -> None:
        super().__init__()
        self.register_buffer("w_ih", torch.stack([lstm.weight_ih_l0, lstm.weight_ih_l0_reverse]))
        self.register_buffer("w_hh", torch.stack([lstm.weight_hh_l0, lstm.weight_hh_l0_reverse]))
        biases = [
            lstm.bias_ih_l0,
            lstm.bias_hh_l0,
            lstm.bias_ih_l0_reverse,
            lstm.bias_hh_l0_reverse,
        ]
        self.register_buffer("bias", torch.cat(biases).view(2, -1))

    def forward(self, x: Tensor, lengths: Tensor, mask: Tensor) -> Tensor:
        out = _bilstm(x, lengths, self.w_ih, self.w_hh, self.bias)  # (B, T, 2H)
        return out * mask.unsqueeze(-1).to(out.dtype)


def padding_unit(pipeline: EmotionPipeline) -> int:
    """Samples ``u`` such that a waveform of ``k u - 1`` samples gives every feature a frame count
    (``1 + samples // hop``; a Whisper feature's ``ceil((samples // 160) / 2)``) that is a
    multiple of its branch's time stride."""
    unit = 1
    for name, kind in pipeline.kinds.items():
        unit = math.lcm(unit, kind.hop_length * pipeline.net.branches[name].time_stride)
    return unit


def max_samples(pipeline: EmotionPipeline) -> int | None:
    """The longest clip the exported graph takes (30 s with a Whisper feature), or None."""
    if any(isinstance(e, WhisperFrontEnd) for e in pipeline.frontend.extractors.values()):
        return MAX_POSITIONS * 2 * MEL_HOP
    return None


class _ExportGraph(nn.Module):
    """The pipeline as exported: waveforms (B, S), lengths (B,) -> probabilities (B, C)."""

    def __init__(self, pipeline: EmotionPipeline) -> None:
        super().__init__()
        self.pipeline = copy.deepcopy(pipeline)
        net = self.pipeline.net
        for branch in net.branches.values():
            if isinstance(branch, Conv1dBranch):
                branch.pool = _PairMax()
        if isinstance(net.temporal, BiLSTM):
            net.temporal = _ExportBiLSTM(net.temporal.lstm)
        self.unit = padding_unit(pipeline)

    def forward(self, waveforms: Tensor, lengths: Tensor) -> Tensor:
        """Zero-padded waveforms (B, S), lengths (B,) in samples -> probabilities (B, C)."""
        samples = waveforms.shape[-1]
        units = (samples + self.unit) // self.unit  # ceil((samples + 1) / unit)
        right = units * self.unit - 1 - samples  # >= 0
        padded = nn.functional.pad(waveforms, (0, right))  # (B, S'): S' + 1 a multiple of unit
        return torch.softmax(self.pipeline(padded, lengths), dim=-1)  # (B, C)


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Hide a library's warnings logged while the block runs (the optimiser's notes)."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def export_onnx(
    pipeline: EmotionPipeline, path: str | os.PathLike, *, opset: int = DEFAULT_OPSET
) -> Path:
    """Export ``pipeline`` (waveform -> probabilities) to ``path`` and its sidecar JSON.

    Both files are written to temporary names and renamed, so a failed export leaves neither.
    Returns ``path``.
    """
    from emofuse import __version__

    rate = pipeline.sample_rate
    path = Path(path)
    graph = _ExportGraph(pipeline).cpu().eval()
    example = (torch.zeros(2, rate), torch.tensor([rate, rate // 2]))
    min_samples = graph.unit  # torch.export assumes >= 2 frames after pooling
    batch, samples = torch.export.Dim("batch"), torch.export.Dim("samples", min=min_samples)
    sidecar = {
        "format": SIDECAR_FORMAT,
        "emofuse_version": __version__,
        "labels": list(pipeline.labels),
        "sample_rate": rate,
        "min_samples": min_samples,
        "max_samples": max_samples(pipeline),
        "inputs": list(INPUT_NAMES),
        "outputs": list(OUTPUT_NAMES),
        "opset": opset,
        "features": [s.to_dict() for s in pipeline.features],
        "model_config": pipeline.model_config.to_dict(),
        "eval_windows": pipeline.windows.to_dict(),
        "speech_only": bool(pipeline.extra.get("speech_only", False)),
    }
    # The model is renamed into place only after its sidecar is written (both or neither).
    with atomic_path(path) as tmp_model, atomic_path(sidecar_path(path)) as tmp_sidecar:
        # _registration: "torchvision is not installed. Skipping torchvision::nms" and the like
        registration = "torch.onnx._internal.exporter._registration"
        with torch.no_grad(), warnings.catch_warnings(), _quiet("onnxscript"), _quiet(registration):
            warnings.simplefilter("ignore")  # torch.export's internal deprecation warnings
            program = torch.onnx.export(
                graph,
                example,
                dynamo=True,
                verbose=False,
                opset_version=opset,
                input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes={"waveforms": {0: batch, 1: samples}, "lengths": {0: batch}},
                custom_translation_table={torch.ops.emofuse.bilstm.default: _bilstm_onnx},
            )
        program.save(tmp_model, external_data=False)
        tmp_sidecar.write_text(json.dumps(sidecar, indent=2) + "\n")
    return path


class OnnxBackend:
    """Runs a model written by :func:`export_onnx` with onnxruntime (CPU).

    Attributes:
        labels: class names, in output order.
        sample_rate: the sample rate the model expects.
        min_samples: narrower batches are zero-padded to this width.
        max_samples: the longest clip the model takes (30 s with a Whisper feature), or None.
        metadata: the whole sidecar.

    It runs :meth:`probabilities` only: no embeddings, no adaptation (``can_embed`` and
    ``can_adapt`` are false; those methods raise :class:`BackendUnsupported`).
    """

    name = "onnx"
    can_embed = False
    can_adapt = False
    pipeline = None
    batch_windows = None

    def __init__(
        self, path: str | os.PathLike, *, num_threads: int | None = None, precision: str = "auto"
    ) -> None:
        if precision not in ("auto", "fp32"):
            raise ValueError(f"the onnx backend runs in float32; precision {precision!r} applies "
                             "to the torch backend")  # fmt: skip
        self.precision_choice = PrecisionChoice(precision, "fp32", "onnxruntime runs the export "
                                                "in float32")  # fmt: skip
        try:
            import onnxruntime
        except ImportError:
            raise ImportError(
                "running ONNX models needs onnxruntime: pip install 'emofuse[onnx]'"
            ) from None
        path = Path(path)
        sidecar = sidecar_path(path)
        if not path.is_file():
            raise OnnxModelError(f"{path}: no such ONNX model file")
        if not sidecar.is_file():
            raise OnnxModelError(f"{sidecar}: missing sidecar of ONNX model {path}")
        try:
            meta = json.loads(sidecar.read_text())
            if meta.get("format") != SIDECAR_FORMAT:
                raise ValueError(f"format is {meta.get('format')!r}, not {SIDECAR_FORMAT!r}")
            self.metadata: dict = features_from_v2(meta)  # older sidecars: "streams"
            self.labels: tuple[str, ...] = tuple(str(label) for label in meta["labels"])
            self.sample_rate: int = int(meta["sample_rate"])
            self.min_samples: int = int(meta["min_samples"])
            longest = meta.get("max_samples")  # older sidecars: no limit
            self.max_samples: int | None = None if longest is None else int(longest)
            windows = EvalWindows(**meta.get("eval_windows", {}))  # older sidecars: defaults
            self.window_seconds, self.hop_seconds = windows.window_seconds, windows.hop_seconds
            self.speech_only: bool = bool(meta.get("speech_only", False))  # older: whole clips
            self.normalised_per: str | None = meta.get("normalised_per")
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise OnnxModelError(f"{sidecar}: not an emofuse ONNX sidecar ({error})") from None
        options = onnxruntime.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own types for corrupt files
            message = " ".join(str(error).split())[:300]
            raise OnnxModelError(f"{path}: not a readable ONNX model ({message})") from None

    def probabilities(self, waveforms: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Zero-padded waveforms (B, S) float32, lengths (B,) int64 -> probabilities (B, C)."""
        waveforms = np.ascontiguousarray(waveforms, dtype=np.float32)
        lengths = np.ascontiguousarray(lengths, dtype=np.int64)
        if waveforms.ndim != 2 or lengths.shape != (waveforms.shape[0],):
            raise ValueError(
                f"expected waveforms (batch, samples) and lengths (batch,), got "
                f"{waveforms.shape} and {lengths.shape}"
            )
        if lengths.size and (lengths.min() < 0 or lengths.max() > waveforms.shape[1]):
            raise ValueError(
                f"lengths must lie in [0, {waveforms.shape[1]}], got {lengths.tolist()}"
            )
        longest = self.max_samples
        if longest is not None and waveforms.shape[1] > longest:
            if lengths.size and lengths.max() > longest:
                raise ValueError(
                    f"this model takes clips of up to {longest} samples "
                    f"({longest / self.sample_rate:g} s), got one of {int(lengths.max())}"
                )
            waveforms = waveforms[:, : max(int(lengths.max(initial=0)), self.min_samples)]
        if waveforms.shape[1] < self.min_samples:  # more zero padding: the same result
            waveforms = np.pad(waveforms, ((0, 0), (0, self.min_samples - waveforms.shape[1])))
        feeds = dict(zip(INPUT_NAMES, (waveforms, lengths), strict=True))
        return self._session.run(list(OUTPUT_NAMES), feeds)[0]

    def embeddings(self, waveforms: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        raise BackendUnsupported("embeddings need the torch backend (a model file, not ONNX)")

    def adapting_probabilities(self, *args: object, **kwargs: object) -> np.ndarray:
        raise BackendUnsupported("a recording adapts with the torch backend only (not ONNX)")
