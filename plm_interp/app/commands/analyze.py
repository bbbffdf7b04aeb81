"""``plm-interp analyze NAME --model DIR|SHIPPED_NAME [--task SPEC] [--set option=value ...] [--out DIR]``.

``--task`` is optional when the checkpoint records its task; it takes a JSON spec (``'{"kind": "cfg",
"grammar": "cfg3b"}'``) or ``cfg:NAME`` for a built-in grammar. Option values are read as JSON when they
parse (numbers, booleans, lists), else as strings; unknown options are refused before anything runs.
"""
from __future__ import annotations

import json
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("analyze", help="run a registered analysis on a checkpoint")
    p.add_argument("name", nargs="?", help="analysis name (omit with --list)")
    p.add_argument("--list", action="store_true", help="list the registered analyses")
    p.add_argument("--model", help="checkpoint directory (config.json + model.safetensors) or shipped model name")
    p.add_argument("--task", default=None, help="task spec as JSON, or cfg:GRAMMAR / igsm:PRESET")
    p.add_argument("--set", dest="options", action="append", default=[], metavar="OPTION=VALUE")
    p.add_argument("--out", default=None, help="directory for result.json, table.md, plot.png")
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


def parse_options(items: list[str]) -> dict:
    options = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set {item!r} must look like option=value")
        key, value = item.split("=", 1)
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def run(args) -> int:
    import analyses
    from plm_interp.pretrained import load_model_ref

    if args.list or not args.name:
        for name in analyses.names():
            doc = (analyses.get(name).__doc__ or "").strip().split("\n")[0]
            print(f"{name:20s} {doc}")
        return 0
    options = parse_options(args.options)
    analyses.registry.check_options(args.name, options)  # unknown name or option: refused before loading
    if not args.model:
        raise ValueError("--model is required (a checkpoint directory or a shipped model's name)")
    task = parse_task(args.task)
    model = load_model_ref(args.model)
    result = analyses.run(args.name, model, task, **options)
    print(result.table())
    if args.out:
        out = Path(args.out)
    else:  # beside a checkpoint directory; for a shipped model, under runs/ (the package stays read-only)
        out = (Path(args.model) if Path(args.model).is_dir() else Path("runs") / args.model) / "analyses" / args.name
    result.save(out)
    print(f"saved to {out}")
    return 0
