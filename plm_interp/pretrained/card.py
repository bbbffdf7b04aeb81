"""Model cards: what a shipped model is, how it was trained and what was measured on it.

A card is the JSON object in ``card.json``; ``MODEL_CARD.md`` is rendered from it, so the two never disagree.
Fields the model itself determines (task, architecture, file sizes and checksums) are computed by
:func:`~plm_interp.pretrained.ship.ship_model`, never typed by hand; the rest (training command, wall time,
machine, measured figures) comes from whoever trained the model. :func:`check_card` names every missing or
ill-typed field, so a card cannot be shipped half-filled.
"""
from __future__ import annotations

import json
from typing import Any

CARD_VERSION = 1

#: required fields of each section (the ``files`` section maps file name -> {"bytes", "sha256"})
TASK_FIELDS = ("kind", "summary", "spec")
ARCH_FIELDS = ("n_layers", "n_heads", "d_model", "d_head", "d_mlp", "positional", "attention_dir", "n_ctx",
               "d_vocab", "params")
TRAINING_FIELDS = ("command", "seed", "steps", "tokens_seen", "wall_time_s", "machine")
FIGURE_FIELDS = ("metric", "value", "command")
#: top-level fields the person shipping may give (beside ``training`` and ``figures``)
FREE_TEXT_FIELDS = ("summary", "notes", "limitations")
#: top-level fields computed from the model; a card given to ship_model must not set them
COMPUTED_FIELDS = ("card_version", "name", "task", "architecture", "files")


def task_summary(spec: dict[str, Any] | None) -> str:
    """One line naming the task a model was trained on (the full spec stays in the card beside it)."""
    if not spec:
        return "no task recorded"
    kind = spec.get("kind")
    if kind == "cfg":
        grammar = spec.get("grammar")
        name = grammar if isinstance(grammar, str) else (grammar or {}).get("name", "custom")
        parts = [f"CFG, grammar {name}"]
        if spec.get("implicit"):
            parts.append("implicit terminals")
        if spec.get("corrupt_frac"):
            parts.append(f"{100 * spec['corrupt_frac']:g}% of training strings corrupted "
                         f"(flip rate {spec.get('flip_rate')})")
        return ", ".join(parts)
    if kind == "igsm":
        c = spec.get("config") or {}
        parts = [f"iGSM, preset {spec.get('preset')}", f"op_max {c.get('op_max')}", f"ip_max {c.get('ip_max')}",
                 f"modulus {c.get('modulus')}", f"n_ctx {spec.get('n_ctx')}", f"format {c.get('fmt')}"]
        if c.get("letter_order", "random") != "random" or c.get("letters", 52) != 52:
            parts.append(f"{c.get('letter_order', 'random')} letters from a pool of {c.get('letters', 52)}")
        if spec.get("retry"):
            parts.append(f"retry data {spec['retry']} (p = {spec.get('retry_p')})")
        return ", ".join(parts)
    return f"task {kind!r}"


def architecture(cfg, n_params: int) -> dict[str, Any]:
    """The card's architecture section, from a :class:`~plm_interp.config.PLMConfig`."""
    return {"n_layers": cfg.n_layers, "n_heads": cfg.n_heads, "d_model": cfg.d_model, "d_head": cfg.d_head,
            "d_mlp": cfg.d_mlp, "positional": cfg.positional, "attention_dir": cfg.attention_dir,
            "n_ctx": cfg.n_ctx, "d_vocab": cfg.d_vocab, "dtype": cfg.dtype_name, "params": int(n_params)}


def check_card(card: dict[str, Any], source: str = "card") -> None:
    """Raise ``ValueError`` listing every missing or ill-typed field of a complete card."""
    problems: list[str] = []
    if not isinstance(card, dict):
        raise ValueError(f"{source}: a card is a dict, got {type(card).__name__}")
    if not isinstance(card.get("name"), str) or not card.get("name"):
        problems.append("'name' (a non-empty string)")
    for section, fields in (("task", TASK_FIELDS), ("architecture", ARCH_FIELDS), ("training", TRAINING_FIELDS)):
        value = card.get(section)
        if not isinstance(value, dict):
            problems.append(f"'{section}' (a dict with {list(fields)})")
            continue
        problems += [f"'{section}.{f}'" for f in fields if value.get(f) is None]
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    for f in ("seed", "steps", "tokens_seen"):
        if training.get(f) is not None and not _is_int(training[f]):
            problems.append(f"'training.{f}' must be an int, got {training[f]!r}")
    if training.get("wall_time_s") is not None and not _is_number(training["wall_time_s"]):
        problems.append(f"'training.wall_time_s' must be a number of seconds, got {training['wall_time_s']!r}")
    figures = card.get("figures")
    if not isinstance(figures, list) or not figures:
        problems.append("'figures' (a non-empty list of {metric, value, paper_value (optional), command})")
    else:
        for i, fig in enumerate(figures):
            if not isinstance(fig, dict):
                problems.append(f"'figures[{i}]' must be a dict")
                continue
            problems += [f"'figures[{i}].{f}'" for f in FIGURE_FIELDS if fig.get(f) is None]
    files = card.get("files")
    if not isinstance(files, dict) or not files:
        problems.append("'files' (file name -> {bytes, sha256})")
    else:
        for fname, rec in files.items():
            if not isinstance(rec, dict) or not _is_int(rec.get("bytes")) or not isinstance(rec.get("sha256"), str):
                problems.append(f"'files.{fname}' needs an int 'bytes' and a 'sha256' string")
    if problems:
        raise ValueError(f"{source}: missing or invalid field(s): {'; '.join(problems)}")


def check_given(card: dict[str, Any]) -> None:
    """Check the part of a card a person supplies to ``ship_model`` before anything is written."""
    if not isinstance(card, dict):
        raise ValueError(f"card must be a dict, got {type(card).__name__}")
    computed = [k for k in COMPUTED_FIELDS if k in card]
    if computed:
        raise ValueError(f"card field(s) {computed} are computed from the model by ship_model; leave them out")
    allowed = set(FREE_TEXT_FIELDS) | {"training", "figures"}
    unknown = sorted(set(card) - allowed)
    if unknown:
        raise ValueError(f"unknown card field(s) {unknown}; allowed: {sorted(allowed)}")
    if "training" in card and not isinstance(card["training"], dict):
        raise ValueError("card field 'training' must be a dict")


def render_markdown(card: dict[str, Any]) -> str:
    """``MODEL_CARD.md`` from a complete card."""
    name, arch, tr, task = card["name"], card["architecture"], card["training"], card["task"]
    out = [f"# {name}", ""]
    if card.get("summary"):
        out += [card["summary"].strip(), ""]
    out += ["```python", "from plm_interp.pretrained import load_pretrained", "",
            f'model = load_pretrained("{name}")   # HookedPLM; its task is model.cfg.task', "```", "",
            "## Task", "", task["summary"], "", "```json", json.dumps(task["spec"], indent=2, sort_keys=True),
            "```", "", "## Architecture", "", "| field | value |", "|---|---|"]
    out += [f"| {k} | {_fmt(v)} |" for k, v in arch.items()]
    out += ["", "## Training", "", "| field | value |", "|---|---|",
            f"| command | `{tr['command']}` |", f"| seed | {tr['seed']} |", f"| steps | {tr['steps']:,} |",
            f"| tokens seen | {tr['tokens_seen']:,} |", f"| wall time | {_duration(tr['wall_time_s'])} |",
            f"| machine | {tr['machine']} |"]
    out += [f"| {k.replace('_', ' ')} | {_fmt(v)} |" for k, v in tr.items() if k not in TRAINING_FIELDS]
    out += ["", "## Measured", "", "| metric | this model | paper | command |", "|---|---|---|---|"]
    for fig in card["figures"]:
        paper = fig.get("paper_value")
        note = f" ({fig['note']})" if fig.get("note") else ""
        out.append(f"| {fig['metric']}{note} | {_fmt(fig['value'])} | {'—' if paper is None else _fmt(paper)} "
                   f"| `{fig['command']}` |")
    for section in ("limitations", "notes"):
        if card.get(section):
            out += ["", f"## {section.capitalize()}", "", _text(card[section])]
    out += ["", "## Files", "", "| file | bytes | sha256 |", "|---|---|---|"]
    out += [f"| {f} | {r['bytes']:,} | `{r['sha256']}` |" for f, r in sorted(card["files"].items())]
    return "\n".join(out) + "\n"


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "\n".join(f"- {v}" for v in value)
    return str(value).strip()


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
