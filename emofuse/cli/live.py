"""``emofuse predict --stream -``: raw PCM on standard input -> events as JSON lines, written as
they happen (``arecord -f S16_LE -r 16000 -c 1 | emofuse predict --stream -``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import BinaryIO, TextIO

__all__ = ["PCM_CHOICES", "predict_stream", "stream_events"]

PCM_CHOICES = ("s16le", "f32le")
READ_SECONDS = 0.1  # what one read asks for: events are at most this late on a live pipe


def predict_stream(args: argparse.Namespace) -> int:
    """Check the options, load the model, stream standard input to standard output."""
    import torch

    from emofuse.inference.recognizer import EmotionRecognizer
    from emofuse.signal.audio import check_sample_rate

    if args.inputs != ["-"]:
        raise ValueError(f"--stream reads raw PCM from standard input: give '-' as the only "
                         f"input, got {' '.join(map(str, args.inputs))}")  # fmt: skip
    pcm = "s16le" if args.format == "table" else args.format
    if pcm not in PCM_CHOICES:
        raise ValueError(f"with --stream, --format names the input PCM (s16le or f32le; "
                         f"events are written as JSON lines), got {args.format}")  # fmt: skip
    others = {"--timeline": args.timeline, "--plot": args.plot, "--output": args.output,
              "--embeddings": args.embeddings, "--adapt-to-inputs": args.adapt_to_inputs,
              "--window": args.window is not None, "--hop": args.hop is not None,
              "--ray": args.ray is not None}  # fmt: skip
    given = [option for option, used in others.items() if used]
    if given:
        raise ValueError(f"--stream does not combine with {', '.join(given)}: it writes each "
                         "event to standard output as a JSON line")  # fmt: skip
    check_sample_rate(args.rate, "--rate")
    torch.set_num_threads(args.threads or 1)
    recognizer = EmotionRecognizer.load(
        args.model or "accurate", backend=args.backend, device=args.device,
        threads=args.threads or 1, precision=args.precision, vad=not args.no_vad,
    )  # fmt: skip
    stream = recognizer.stream(args.rate, labels=args.labels)
    try:
        stream_events(stream, sys.stdin.buffer, sys.stdout, pcm)
    except BrokenPipeError:  # the reader went away: nothing left to say
        sys.stderr.close()
    return 0


def stream_events(stream, source: BinaryIO, out: TextIO, pcm: str) -> None:
    """Feed ``source``'s raw PCM to ``stream`` as it arrives (a sample split between two reads
    is joined), writing and flushing each event as a JSON line; at its end (or Ctrl-C), the
    last events. Bytes left over that make no whole sample are said on stderr."""
    from emofuse.inference.stream import PCM_FORMATS, decode_pcm

    width = PCM_FORMATS[pcm].itemsize
    want = max(width, round(stream.sample_rate * READ_SECONDS) * width)
    read = getattr(source, "read1", source.read)  # what is there, without waiting for more
    carry = b""

    def write(events: list) -> None:
        for event in events:
            out.write(json.dumps(event.to_dict()) + "\n")
        if events:
            out.flush()

    try:
        while data := read(want):
            data = carry + data
            whole = len(data) - len(data) % width
            carry = data[whole:]
            write(stream.feed(decode_pcm(data[:whole], pcm)))
    except KeyboardInterrupt:
        print("emofuse: interrupted: the last events follow", file=sys.stderr)
    write(stream.close())
    if carry:
        print(f"emofuse: ignored {len(carry)} trailing bytes (not a whole {pcm} sample)",
              file=sys.stderr)  # fmt: skip
