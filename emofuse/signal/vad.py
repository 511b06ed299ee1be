"""Voice activity detection: Silero VAD (v6, 16 kHz) run in plain torch, batched and streamed.

The weights come from the ``silero-vad`` wheel (MIT licence, Silero Team,
https://github.com/snakers4/silero-vad): by default those of its official TorchScript model
``silero_vad/data/silero_vad.jit``, read with :func:`torch.jit.load`; its
``silero_vad_16k.safetensors`` (same layout, other weights, see :meth:`SpeechDetector.load`) can
be loaded instead. The package is located with :func:`importlib.util.find_spec` and never
imported here (importing it calls ``torch.set_num_threads(1)``); nothing is fetched at run time.

The model scores the audio in chunks of 512 samples (32 ms at 16 kHz); each chunk is seen with
the 64 samples before it (zeros before the start) and the LSTM state is carried from chunk to
chunk, exactly as the official JIT model does when called chunk by chunk after
``reset_states()``. The last partial chunk is zero-padded. Per chunk (shapes without batch)::

    chunk (576,) = 64 context + 512 new samples, reflect-padded on the right -> (640,)
    stft_conv   kernel 256, hop 128                (258, 4)  re = [:129], im = [129:]
    magnitude   sqrt(re^2 + im^2)                  (129, 4)
    conv1..4    k 3, pad 1, strides 1,2,2,1, ReLU  (128, 1)
    LSTM        128 -> 128, state over chunks      (128,)
    ReLU, 1x1 conv, sigmoid                        ()        speech probability

Here the encoder runs on all chunks of all files at once and the recurrence is one
:class:`torch.nn.LSTM` over the chunk sequence (the LSTMCell weights copied into it). The
``stft_conv`` basis is a periodic-Hann-windowed DFT, so its magnitude is computed with
:func:`torch.fft.rfft`; the small convs run as matrix products over strided views, skipping the
taps that only meet zero padding. Results equal the conv formulation to float rounding (~1e-6).

:mod:`emofuse.signal.vad_segmenter` turns the probabilities into speech regions, for whole
files and over streams.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = [
    "SAMPLE_RATE",
    "CHUNK",
    "CONTEXT",
    "VADUnavailable",
    "SpeechDetector",
    "VADStream",
    "feed_streams",
    "silero_weights_path",
    "WEIGHT_FILES",
]

SAMPLE_RATE = 16000
CHUNK = 512  # samples, 32 ms
CONTEXT = 64  # samples of the previous chunk seen with each chunk
_N_FFT, _HOP, _BINS = 256, 128, 129
_ENCODER_ROWS = 8192  # chunks encoded per slice, bounds the memory of very long inputs


def _hann() -> Tensor:
    """The periodic Hann window (256,) of silero's STFT basis: its rows are
    ``hann * cos(2 pi k n / 256)`` (real) and ``-hann * sin(...)`` (imaginary), k = 0..128."""
    return torch.hann_window(_N_FFT, periodic=True)


class VADUnavailable(ImportError):
    """The silero-vad package (or its weight file) is not installed."""


WEIGHT_FILES = {"jit": "silero_vad.jit", "safetensors": "silero_vad_16k.safetensors"}


def silero_weights_path(kind: str = "jit") -> Path:
    """Path of a weight file in the installed silero-vad package (located, not imported).

    Args:
        kind: ``"jit"``, the official TorchScript model ``silero_vad.jit`` (the same weights as
            every ONNX file of the package), or ``"safetensors"``, ``silero_vad_16k.safetensors``
            shipped for the tinygrad port (other weights, see :meth:`SpeechDetector.load`).

    Raises:
        VADUnavailable: the package or the file is missing.
    """
    if kind not in WEIGHT_FILES:
        raise ValueError(f"kind must be one of {sorted(WEIGHT_FILES)}, got {kind!r}")
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise VADUnavailable(
            "voice activity detection needs the silero-vad package: pip install silero-vad"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / WEIGHT_FILES[kind]
    if not path.is_file():
        raise VADUnavailable(
            f"silero-vad is installed but {path} is missing; pip install --force-reinstall "
            "silero-vad"
        )
    return path


def _jit_state(path: Path) -> dict[str, Tensor]:
    """The 16 kHz weights of silero's TorchScript model, renamed to :class:`SpeechDetector`'s."""
    names = {"stft.forward_basis_buffer": "stft_conv.weight",
             "decoder.decoder.2.weight": "final_conv.weight",
             "decoder.decoder.2.bias": "final_conv.bias"}  # fmt: skip
    for layer in range(4):
        for kind in ("weight", "bias"):
            names[f"encoder.{layer}.reparam_conv.{kind}"] = f"conv{layer + 1}.{kind}"
    for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        names[f"decoder.rnn.{kind}"] = f"lstm.{kind}_l0"
    with warnings.catch_warnings():  # torch >= 2.9 deprecates TorchScript; only weights are read
        warnings.simplefilter("ignore", DeprecationWarning)
        model = torch.jit.load(str(path), map_location="cpu")
    state = {key.removeprefix("_model."): value for key, value in model.state_dict().items()}
    missing = sorted(set(names) - set(state))
    if missing:
        raise ValueError(f"{path} is not a silero VAD v5/v6 model: it lacks {missing}")
    return {ours: state[theirs].float().clone() for theirs, ours in names.items()}


def _safetensors_state(path: Path) -> dict[str, Tensor]:
    """The tensors of silero's ``silero_vad_16k.safetensors``, renamed (LSTMCell -> LSTM)."""
    from emofuse.signal.whisper_weights import read_safetensors

    state = {}
    for name, array in read_safetensors(path).items():
        if name.startswith("lstm_cell."):  # LSTMCell -> one-layer LSTM: weight_ih_l0, ...
            name = "lstm." + name.removeprefix("lstm_cell.") + "_l0"
        state[name] = torch.from_numpy(array.astype(np.float32))
    return state


# ---------------------------------------------------------------------------- model


class SpeechDetector(nn.Module):
    """Silero VAD v6 (16 kHz): waveforms -> one speech probability per 512-sample chunk.

    Build it with :meth:`load`. :meth:`probabilities` scores whole files in one batched forward;
    :meth:`stream` scores a long file block by block.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stft_conv = nn.Conv1d(1, 2 * _BINS, _N_FFT, stride=_HOP, bias=False)
        self.conv1 = nn.Conv1d(_BINS, 128, 3, padding=1)
        self.conv2 = nn.Conv1d(128, 64, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(64, 64, 3, stride=2, padding=1)
        self.conv4 = nn.Conv1d(64, 128, 3, padding=1)
        self.lstm = nn.LSTM(128, 128, batch_first=True)
        self.final_conv = nn.Conv1d(128, 1, 1)
        self.register_buffer("window", _hann(), persistent=False)
        self._fast: tuple[tuple, tuple[Tensor, ...]] | None = None  # see _weights

    @classmethod
    def load(cls, *, path: str | Path | None = None) -> SpeechDetector:
        """The detector with silero's weights, in eval mode.

        By default the weights of the package's official TorchScript model ``silero_vad.jit``
        (what ``silero_vad.load_silero_vad()`` runs; equal to its ONNX files), read with
        :func:`torch.jit.load`. The package's ``silero_vad_16k.safetensors`` (for its tinygrad
        port) holds *other* weights in silero-vad 6.2.3, which give probabilities up to about
        0.1 away from the official model's (upstream issue snakers4/silero-vad#768); pass it as
        ``path`` to use it anyway.

        Args:
            path: a ``.jit`` or ``.safetensors`` silero VAD file; default: the package's JIT.

        Raises:
            VADUnavailable: silero-vad is not installed (and no ``path`` given).
        """
        path = Path(path) if path is not None else silero_weights_path("jit")
        if path.suffix == ".safetensors":
            state = _safetensors_state(path)
        else:
            state = _jit_state(path)
        detector = cls()
        detector.load_state_dict(state, strict=True)
        return detector.eval()

    @property
    def device(self) -> torch.device:
        return self.window.device

    def _weights(self) -> tuple[Tensor, ...]:
        """The conv weights as matrices (rows: tap-major, then input channel) for
        :meth:`_encode_windowed`; taps that only ever meet zero padding are dropped from conv3
        and conv4. Cached until a parameter changes."""
        params = [self.conv1.weight, self.conv2.weight, self.conv3.weight, self.conv4.weight]
        key = tuple((w.data_ptr(), w._version, w.device) for w in params)
        if self._fast is None or self._fast[0] != key:
            with torch.inference_mode():
                w1, w2, w3, w4 = (w.detach() for w in params)
                mats = (
                    w1.permute(2, 1, 0).reshape(3 * _BINS, -1).contiguous(),  # (387, 128)
                    w2.permute(2, 1, 0).reshape(3 * 128, -1).contiguous(),  # (384, 64)
                    w3[:, :, 1:].permute(2, 1, 0).reshape(2 * 64, -1).contiguous(),  # (128, 64)
                    w4[:, :, 1].T.contiguous(),  # (64, 128)
                )
            self._fast = (key, mats)
        return self._fast[1]

    def encode(self, frames: Tensor) -> Tensor:
        """STFT frames of chunks (n, 4, 256) -> chunk embeddings (n, 128)."""
        return self._encode_windowed(frames * self.window)

    def _encode_windowed(self, frames: Tensor) -> Tensor:
        """Hann-windowed STFT frames (n, 4, 256) -> chunk embeddings (n, 128).

        ``stft_conv`` is a Hann-windowed DFT basis (see :func:`_hann`), so its magnitude is that
        of :func:`torch.fft.rfft` (the sign of the imaginary part does not matter). The convs
        run as matrix products over strided views, one per output position, leaving out the
        taps that fall on the zero padding.
        """
        n = frames.shape[0]
        w1, w2, w3, w4 = self._weights()
        spec = torch.view_as_real(torch.fft.rfft(frames))  # (n, 4, 129, 2)
        re, im = spec[..., 0], spec[..., 1]
        magnitude = torch.mul(re, re)  # (n, 4, 129)
        magnitude.addcmul_(im, im).sqrt_()
        flat = magnitude.view(n, 4 * _BINS)  # positions 0..3, each 129 bins
        x = magnitude.new_empty(n, 4, 128)  # conv1: k 3, pad 1
        b1 = self.conv1.bias
        torch.addmm(b1, flat[:, : 2 * _BINS], w1[_BINS:], out=x[:, 0])
        torch.addmm(b1, flat[:, : 3 * _BINS], w1, out=x[:, 1])
        torch.addmm(b1, flat[:, _BINS:], w1, out=x[:, 2])
        torch.addmm(b1, flat[:, 2 * _BINS :], w1[: 2 * _BINS], out=x[:, 3])
        flat = x.relu_().view(n, 4 * 128)
        x = magnitude.new_empty(n, 2, 64)  # conv2: k 3, pad 1, stride 2
        torch.addmm(self.conv2.bias, flat[:, : 2 * 128], w2[128:], out=x[:, 0])
        torch.addmm(self.conv2.bias, flat[:, 128:], w2, out=x[:, 1])
        x = torch.addmm(self.conv3.bias, x.relu_().view(n, 2 * 64), w3).relu_()  # (n, 64)
        return torch.addmm(self.conv4.bias, x, w4).relu_()  # (n, 128)

    def decode(self, hidden: Tensor) -> Tensor:
        """LSTM outputs (..., 128) -> speech probabilities (...)."""
        weight, bias = self.final_conv.weight[0, :, 0], self.final_conv.bias[0]
        return torch.sigmoid(F.relu(hidden) @ weight + bias)  # mean over one frame: itself

    def _embed(self, audio: Tensor, chunks: int) -> Tensor:
        """Embeddings (chunks, 128) of the chunks of ``audio`` (64 + chunks * 512,): chunk ``i``
        is ``audio[64 + 512 i : 64 + 512 (i + 1)]``, seen with the 64 samples before it."""
        out = []
        window = self.window
        for begin in range(0, chunks, _ENCODER_ROWS):
            n = min(_ENCODER_ROWS, chunks - begin)
            part = audio[begin * CHUNK : CONTEXT + (begin + n) * CHUNK]
            frames = part.new_empty(n, 4, _N_FFT)  # [context | chunk], reflect-padded by 64
            torch.mul(part.as_strided((n, 3, _N_FFT), (CHUNK, _HOP, 1)), window,
                      out=frames[:, :3])  # fmt: skip
            tail = _N_FFT - CONTEXT  # last frame: 192 samples, then 64 reflected
            torch.mul(part.as_strided((n, tail), (CHUNK, 1), 3 * _HOP), window[:tail],
                      out=frames[:, 3, :tail])  # fmt: skip
            reflected = part.as_strided((n, CONTEXT), (CHUNK, 1), CHUNK - 1).flip(-1)
            torch.mul(reflected, window[tail:], out=frames[:, 3, tail:])
            out.append(self._encode_windowed(frames))
        return torch.cat(out) if len(out) > 1 else out[0]

    def _lstm(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None):
        """``self.lstm(x, state)`` (batch first) without :class:`torch.nn.LSTM`'s Python."""
        if state is None:
            zeros = x.new_zeros(1, x.shape[0], 128)
            state = (zeros, zeros)
        lstm = self.lstm
        hidden, h, c = torch.lstm(x, state, lstm._flat_weights, True, 1, 0.0, False, False, True)
        return hidden, (h, c)

    def probabilities(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Speech probability per 512-sample chunk of each wave, in one batched forward.

        Args:
            waves: mono float 16 kHz waveforms (samples,), any lengths.

        Returns:
            per wave, float32 ``(ceil(samples / 512),)``; each equals the wave scored alone.
        """
        waves = [_mono(wave) for wave in waves]
        if not waves:
            return []
        counts = [-(-wave.size // CHUNK) for wave in waves]
        kept = [i for i, count in enumerate(counts) if count]
        if not kept:
            return [np.zeros(0, np.float32) for _ in waves]
        # all files in one buffer, chunk-aligned, one silent chunk between two files (so each
        # file's context is zeros): file kept[j] has chunks starts[j] .. starts[j] + count - 1
        starts, total = [], 0
        for i in kept:
            starts.append(total)
            total += counts[i] + 1
        total -= 1
        audio = np.zeros(CONTEXT + total * CHUNK, np.float32)
        for i, start in zip(kept, starts, strict=True):
            audio[CONTEXT + start * CHUNK : CONTEXT + start * CHUNK + waves[i].size] = waves[i]
        lengths = [counts[i] for i in kept]
        longest = max(lengths)
        with torch.inference_mode():
            embedded = self._embed(torch.from_numpy(audio).to(self.device), total)
            if len(kept) == 1:
                hidden, _ = self._lstm(embedded[None])
            elif min(lengths) == longest:  # every file as long: a plain batch
                embedded = torch.cat([embedded, embedded.new_zeros(1, 128)])
                hidden, _ = self._lstm(embedded.view(len(kept), longest + 1, 128)[:, :longest])
            else:
                index = torch.tensor(starts)[:, None] + torch.arange(longest)
                index[torch.arange(longest) >= torch.tensor(lengths)[:, None]] = total
                batch = torch.cat([embedded, embedded.new_zeros(1, 128)])[index.to(self.device)]
                if len(kept) * longest <= 2 * sum(lengths):  # causal: padding changes nothing
                    hidden, _ = self._lstm(batch)
                else:  # very unequal lengths: packed, not to run the short files' padding
                    packed = nn.utils.rnn.pack_padded_sequence(
                        batch, lengths, batch_first=True, enforce_sorted=False
                    )
                    hidden, _ = self.lstm(packed)
                    hidden, _ = nn.utils.rnn.pad_packed_sequence(hidden, batch_first=True)
            probs = self.decode(hidden).cpu().numpy()  # (kept files, chunks)
        out = [np.zeros(0, np.float32) for _ in waves]
        for row, i in enumerate(kept):
            out[i] = probs[row, : counts[i]].copy()
        return out

    def stream(self) -> VADStream:
        """A :class:`VADStream` over a new file."""
        return VADStream(self)


def _mono(wave: np.ndarray) -> np.ndarray:
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise ValueError(f"expected a mono waveform (samples,), got shape {wave.shape}")
    return np.ascontiguousarray(wave, dtype=np.float32)


class VADStream:
    """Speech probabilities of one long file fed block by block (blocks of any sizes).

    The LSTM state and the last 64 samples are carried between blocks, so the concatenated
    outputs of :meth:`feed` and :meth:`finish` equal :meth:`SpeechDetector.probabilities` of the
    whole file. Memory holds fewer than 512 pending samples.
    """

    def __init__(self, detector: SpeechDetector) -> None:
        self.detector = detector
        self._context = np.zeros(CONTEXT, np.float32)
        self._pending = np.zeros(0, np.float32)
        self._state: tuple[Tensor, Tensor] | None = None
        self._finished = False
        self.samples = 0  # samples fed so far

    def _run(self, audio: np.ndarray) -> np.ndarray:
        """Score ``audio`` (a whole number of chunks) after the carried context and state."""
        return _score_together([self], [audio])[0]

    def feed(self, block: np.ndarray) -> np.ndarray:
        """Append ``block`` (samples,); returns the probabilities of the chunks it completed
        (k,), float32."""
        whole = self._whole(block)
        return self._run(whole) if whole.size else np.zeros(0, np.float32)

    def _whole(self, block: np.ndarray) -> np.ndarray:
        """Append ``block``; the whole chunks now complete (k * 512,), to be scored next."""
        if self._finished:
            raise RuntimeError("VADStream.feed after finish(); start a new stream")
        block = _mono(block)
        self.samples += block.size
        audio = np.concatenate([self._pending, block])
        whole = audio.size - audio.size % CHUNK
        self._pending = audio[whole:].copy()
        return audio[:whole]

    def finish(self) -> np.ndarray:
        """The probability of the last partial chunk, zero-padded: (1,), or (0,) if none."""
        if self._finished:
            raise RuntimeError("VADStream.finish called twice")
        self._finished = True
        if self._pending.size == 0:
            return np.zeros(0, np.float32)
        last = np.zeros(CHUNK, np.float32)
        last[: self._pending.size] = self._pending
        return self._run(last)


def feed_streams(streams: Sequence[VADStream], blocks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``[s.feed(b) for s, b in zip(streams, blocks)]`` (streams of one detector) in a few
    batched passes, one per number of chunks completed: what a service does with the audio of
    its concurrent live streams (one pass costs about as much as one stream's)."""
    if len({id(s) for s in streams}) != len(streams):
        raise ValueError("each stream may appear once per call")
    wholes = [s._whole(b) for s, b in zip(streams, blocks, strict=True)]
    out = [np.zeros(0, np.float32) for _ in streams]
    groups: dict[int, list[int]] = {}  # streams by number of chunks completed
    for i, whole in enumerate(wholes):
        if whole.size:
            groups.setdefault(whole.size // CHUNK, []).append(i)
    for members in groups.values():
        scored = _score_together([streams[i] for i in members], [wholes[i] for i in members])
        for i, probs in zip(members, scored, strict=True):
            out[i] = probs
    return out


def _score_together(streams: Sequence[VADStream], wholes: Sequence[np.ndarray]) -> list:
    """Score each stream's ``wholes`` (the same whole number of chunks each) after its carried
    context and state, in one pass; carries both on. Per stream, its chunks are preceded by a
    spacer slot holding its context in its last 64 samples (none for one stream: the context
    leads the audio): slot c is audio[64 + 512 c : 64 + 512 (c + 1)], seen with the 64 before
    it."""
    detector, chunks = streams[0].detector, wholes[0].size // CHUNK
    slots = chunks + (len(streams) > 1)
    audio = np.zeros(CONTEXT + len(streams) * slots * CHUNK, np.float32)
    for j, (stream, whole) in enumerate(zip(streams, wholes, strict=True)):
        first = (j * slots + slots - chunks) * CHUNK
        audio[first : first + CONTEXT] = stream._context
        audio[CONTEXT + first : CONTEXT + first + chunks * CHUNK] = whole
    zeros = torch.zeros(1, 1, 128)
    states = [stream._state or (zeros, zeros) for stream in streams]
    with torch.inference_mode():
        embedded = detector._embed(torch.from_numpy(audio).to(detector.device),
                                   len(streams) * slots)  # fmt: skip
        x = embedded.view(len(streams), slots, 128)[:, slots - chunks :]
        state = (torch.cat([h for h, _ in states], 1).to(detector.device),
                 torch.cat([c for _, c in states], 1).to(detector.device))  # fmt: skip
        hidden, (h, c) = detector._lstm(x, state)
        probs = detector.decode(hidden).cpu().numpy()  # (streams, chunks)
    for j, (stream, whole) in enumerate(zip(streams, wholes, strict=True)):
        stream._state = (h[:, j : j + 1].clone(), c[:, j : j + 1].clone())
        stream._context = whole[-CONTEXT:].copy()
    return [row.copy() for row in probs]
