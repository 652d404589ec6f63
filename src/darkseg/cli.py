"""The ``darkseg`` command line: discovers ``darkseg.commands.*`` and turns user errors into one line."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import re
import sys
from types import ModuleType

from darkseg import __version__, commands
from darkseg.errors import DarksegError

_OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def _command_modules() -> dict[str, ModuleType]:
    """Import every command module, ordered by its ``ORDER``."""
    names = [m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")]
    mods = [importlib.import_module(f"darkseg.commands.{n}") for n in names]
    mods.sort(key=lambda m: (getattr(m, "ORDER", 100), m.__name__))
    return {m.__name__.rsplit(".", 1)[1]: m for m in mods}


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line (exit 2) instead of a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser = _Parser(
        prog="darkseg",
        description="Low-light semantic segmentation from scarce labels.",
        parents=[debug],
    )
    parser.add_argument("--version", action="version", version=f"darkseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, mod in _command_modules().items():
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP, parents=[debug])
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # KEY=VALUE config overrides may follow options (``--size 96 train.iterations=10``).
        if hasattr(args, "overrides") and all(_OVERRIDE.match(e) for e in extra):
            args.overrides += extra
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    # Under torchrun only rank 0 reports progress; other ranks keep warnings and errors.
    quiet_rank = int(os.environ.get("RANK", "0")) != 0
    logging.basicConfig(level=logging.WARNING if quiet_rank else logging.INFO, format="%(message)s")
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except DarksegError as err:
        if args.debug:
            raise
        print(f"darkseg {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"darkseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
