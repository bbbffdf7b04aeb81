"""``plm-interp analyze NAME --model DIR|SHIPPED_NAME [--task SPEC] [--set option=value ...] [--out DIR]
[--device DEV] [--import MODULE ...]``.

``--task`` is optional when the checkpoint records its task; it takes a JSON spec (``'{"kind": "cfg",
"grammar": "cfg3b"}'``) or ``cfg:NAME`` for a built-in grammar. Option values are TOML, read by the same
``--set`` parser as ``train`` (:mod:`plm_app.overrides`); unknown options and values of the wrong type are
refused, naming them, before anything runs. ``--import`` loads a user's module (a dotted name importable from
the current directory, or a ``.py`` path) whose ``@analyses.register`` analyses then run like the built-ins;
installed distributions can add theirs through the entry-point group ``plm_interp.analyses``.

Results go to ``--out``, by default ``runs/<model>/analyses/<NAME>`` under the current directory; the location
is checked to be writable (and not a file) before the model is loaded.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from plm_app.overrides import parse_assignments


def add_parser(sub) -> None:
    p = sub.add_parser("analyze", help="run a registered analysis on a checkpoint",
                       description=__doc__.split("\n\n", 1)[1])
    p.add_argument("name", nargs="?", help="analysis name (omit with --list)")
    p.add_argument("--list", action="store_true", help="list the registered analyses")
    p.add_argument("--model", help="checkpoint directory (config.json + model.safetensors) or shipped model name")
    p.add_argument("--task", default=None, help="task spec as JSON, or cfg:GRAMMAR / igsm:PRESET")
    p.add_argument("--set", dest="options", action="append", default=[], metavar="OPTION=VALUE",
                   help="an analysis option, TOML value, e.g. --set n=512 --set 'layers=\"all\"'")
    p.add_argument("--out", default=None, help="directory for result.json, table.md, plot.png "
                                               "(default runs/<model>/analyses/<NAME> in the current directory)")
    p.add_argument("--device", default="cpu", help="device to run on (default cpu; e.g. cuda)")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import a module (dotted name or .py file) that registers more analyses; repeatable")
    p.set_defaults(func=run)


def parse_task(text: str | None):
    if text is None:
        return None
    if ":" in text and not text.lstrip().startswith("{"):
        kind, name = text.split(":", 1)
        key = {"cfg": "grammar", "igsm": "preset"}.get(kind)
        if key is None:
            raise ValueError(f"--task {text!r}: kind {kind!r} is unknown (use cfg:NAME, igsm:PRESET or a JSON spec)")
        return {"kind": kind, key: name}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--task {text!r} is neither JSON nor KIND:NAME ({exc})") from exc


def out_dir(args) -> Path:
    """``--out``, or ``runs/<model>/analyses/<NAME>`` under the current directory (never inside the package
    or beside a checkpoint that may be read-only)."""
    if args.out:
        return Path(args.out)
    label = Path(args.model).resolve().name if Path(args.model).is_dir() else str(args.model)
    return Path("runs") / label / "analyses" / args.name


def check_writable(out: Path) -> None:
    """Refuse an output location that is a file, lies under a file, or cannot be written, before any work."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is an existing file, not a directory")
    base = out
    while not base.exists():
        base = base.parent
    if not base.is_dir():
        raise ValueError(f"--out {out}: {base} is a file, so the directory cannot be created")
    try:
        with tempfile.TemporaryFile(dir=base):
            pass
    except OSError as exc:
        raise ValueError(f"--out {out}: cannot write in {base} ({exc.strerror or exc})") from exc


def check_device(device: str) -> None:
    from plm_interp.validation import check_device_available as check

    try:
        check(device)
    except ValueError as exc:
        raise ValueError(str(exc).replace("train.device", "--device")) from exc


def run(args) -> int:
    import analyses
    from plm_interp.pretrained import load_model_ref

    for module in args.imports:
        analyses.load_module(module)
    if args.list or not args.name:
        for name in analyses.names():
            doc = (analyses.get(name).__doc__ or "").strip().split("\n")[0]
            print(f"{name:20s} {doc}")
        return 0
    options = parse_assignments(args.options, "option=value, e.g. n=512")
    options = analyses.registry.check_options(args.name, options)  # before loading anything
    if not args.model:
        raise ValueError("--model is required (a checkpoint directory or a shipped model's name)")
    task = parse_task(args.task)
    check_device(args.device)
    out = out_dir(args)
    check_writable(out)
    model = load_model_ref(args.model, device=args.device)
    result = analyses.run(args.name, model, task, **options)
    print(result.table())
    result.save(out)
    print(f"saved to {out}")
    return 0
