"""The ``emofuse`` command: thin subcommands over the library.

Each subcommand parses its arguments and calls one library function; a user error prints one
line (``emofuse: error: ...``) and exits with status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from emofuse.cli import archive, builder, inspect, live, research, serve
from emofuse.cli.common import apply_runtime

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    from emofuse import __version__

    parser = argparse.ArgumentParser(prog="emofuse", description="Speech emotion recognition.")
    parser.add_argument("--version", action="version", version=f"emofuse {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    inspect.add_commands(commands)
    research.add_commands(commands)
    builder.add_commands(commands)
    live.add_commands(commands)
    archive.add_commands(commands)
    serve.add_commands(commands)
    return parser


def _writes_to_a_file(file: object) -> bool:
    """True when ``file`` ends in a file descriptor (terminal, pipe, file), which takes any
    bytes; false for an in-memory text file whose reader decodes strict UTF-8."""
    try:
        file.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return False
    return True


@contextmanager
def _tolerant_stdio() -> Iterator[None]:
    """Let the output name any file. A name with a byte that is not UTF-8 (which Python holds as
    a lone surrogate) would make ``print`` raise ``UnicodeEncodeError`` mid-table on a strict
    UTF-8 stdout; instead stdout writes the name's original bytes back (``surrogateescape``),
    so the printed names match the files, and stderr escapes them (``backslashreplace``). An
    in-memory stdout (a caller's ``io.StringIO``-like capture) cannot hold raw bytes and is
    escaped too. Their own settings are restored on return."""
    restore = []
    for file, errors in ((sys.stdout, "surrogateescape"), (sys.stderr, "backslashreplace")):
        if errors == "surrogateescape" and not _writes_to_a_file(file):
            errors = "backslashreplace"
        reconfigure, before = getattr(file, "reconfigure", None), getattr(file, "errors", None)
        if reconfigure is None or before is None or before == errors:
            continue
        try:
            reconfigure(errors=errors)
        except (ValueError, OSError):  # a closed or detached file: leave it alone
            continue
        restore.append((reconfigure, before))
    try:
        yield
    finally:
        for reconfigure, before in restore:
            try:
                reconfigure(errors=before)
            except (ValueError, OSError):
                pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``emofuse`` command; the exit status (0 fine, 1 an error was reported)."""
    with _tolerant_stdio():
        return _run(argv)


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        apply_runtime(args)
        status = args.func(args)
    except KeyboardInterrupt:
        print("emofuse: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early (e.g. `| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return 141
    except (ValueError, OSError, ImportError) as error:
        # AudioError, CorpusError, ConfigError and ModelFileError are ValueErrors.
        print(f"emofuse: error: {error}", file=sys.stderr)
        return 1
    return status or 0  # a subcommand may return 1 after reporting errors itself
