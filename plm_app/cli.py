"""``plm-interp`` command line. Each subcommand lives in its own module exposing ``add_parser(subparsers)``,
which registers the subcommand and sets ``func(args) -> int`` on it; this file only dispatches.

Subcommands are the modules of :mod:`plm_app.commands` (a new file there is a new subcommand) plus
``quickstart``; they appear in ``plm-interp --help`` in :data:`ORDER`, then the others alphabetically.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from plm_app import commands

#: the subcommands shown first in ``plm-interp --help``, in this order
ORDER = ("info", "train", "analyze", "quickstart", "models")
#: subcommands that live outside :mod:`plm_app.commands`
EXTRA_MODULES = {"quickstart": "plm_app.quickstart"}


def command_modules() -> list[str]:
    """The module of every subcommand, in help order."""
    found = {m.name: f"{commands.__name__}.{m.name}" for m in pkgutil.iter_modules(commands.__path__)
             if not m.name.startswith("_")}
    found.update(EXTRA_MODULES)
    return [found[n] for n in ORDER if n in found] + [found[n] for n in sorted(set(found) - set(ORDER))]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plm-interp", description="Train small transformers on synthetic tasks "
                                     "(CFG, iGSM) and analyse them through hooks.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in command_modules():
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from plm_interp.checkpoint import CheckpointError as ModelFileError
    from plm_interp.training.checkpointing import CheckpointError
    from plm_interp.training.lock import RunDirLocked
    from plm_interp.training.stop_signal import TrainingStopped
    from plm_interp.training.trainer import NonFiniteLossError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, CheckpointError, ModelFileError, RunDirLocked,
            NonFiniteLossError) as exc:
        # bad input, unreadable checkpoints, a run dir in use and a diverged run are the user's to fix: one line, no traceback
        print(f"plm-interp {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except TrainingStopped as exc:  # SIGTERM / SIGINT: the checkpoint is written, the exit code says which signal
        print(f"plm-interp {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
