"""``plm-interp`` command line. Each subcommand lives in its own module exposing ``add_parser(subparsers)``,
which registers the subcommand and sets ``func(args) -> int`` on it; this file only dispatches."""
from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand modules, in the order they appear in ``plm-interp --help``
COMMAND_MODULES = (
    "plm_interp.commands.info",
    "plm_interp.training.cli",
    "analyses.cli",
    "plm_interp.quickstart",
    "plm_interp.commands.models",
    "plm_interp.app.commands.experiment",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plm-interp", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):  # that part of the library is not built yet
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"plm-interp {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
