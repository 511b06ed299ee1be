"""The ``emofuse`` command: thin subcommands over the library.

Each subcommand parses its arguments and calls one library function; a user error prints one
line (``emofuse: error: ...``) and exits with status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from emofuse.cli import builder, inspect, research
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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

