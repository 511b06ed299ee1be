"""``emofuse live``: raw PCM on standard input -> events as JSON lines, written as they happen
(``arecord -f S16_LE -r 16000 -c 1 | emofuse live``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import BinaryIO, TextIO

from emofuse.cli.common import add_model_args, add_runtime_args, load_recognizer, say_precision
from emofuse.inference.stream import EmotionStream

__all__ = ["PCM_CHOICES", "add_commands", "cmd_live", "stream_events"]

PCM_CHOICES = ("s16le", "f32le")
READ_SECONDS = 0.1  # what one read asks for: events are at most this late on a live pipe


def cmd_live(args: argparse.Namespace) -> int:
    """Check the rate, load the model, turn standard input into events on standard output."""
    import torch

    from emofuse.signal.audio import check_sample_rate

    check_sample_rate(args.rate, "--rate")
    torch.set_num_threads(args.threads or 1)
    recognizer = load_recognizer(args, args.threads or 1)
    say_precision(recognizer)
    stream = recognizer.stream(args.rate, labels=args.labels)
    try:
        stream_events(stream, sys.stdin.buffer, sys.stdout, args.pcm)
    except BrokenPipeError:  # the reader went away: nothing left to say
        sys.stderr.close()
    return 0


def stream_events(stream: EmotionStream, source: BinaryIO, out: TextIO, pcm: str) -> None:
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


def add_commands(commands: argparse._SubParsersAction) -> None:
    """``live``."""
    live = commands.add_parser(
        "live", help="emotion of live audio: raw PCM on standard input, events as JSON lines",
        description="Read raw mono PCM from standard input (e.g. arecord -f S16_LE -r 16000 -c 1 "
        "| emofuse live) and write events as JSON lines as they happen: speech_start, partial "
        "(the speech so far), segment (the rows of predict --timeline), speech_end.",
    )  # fmt: skip
    live.add_argument("source", nargs="?", default="-", choices=["-"],
                      help="- (standard input; the default)")  # fmt: skip
    live.add_argument("--rate", type=int, default=16000,
                      help="the input's sample rate, Hz (default 16000; 8000 to 192000)")
    live.add_argument("--pcm", choices=PCM_CHOICES, default="s16le",
                      help="the input's samples: s16le (default) or f32le")
    live.add_argument("--labels", metavar="A,B,...",
                      help="answer over these of the model's labels only (comma-separated)")
    add_model_args(live)
    add_runtime_args(live, threads=1, device=True)
    live.set_defaults(func=cmd_live)
