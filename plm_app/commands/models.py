"""``plm-interp models [NAME]``: list the shipped models, or print one model's card."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list the shipped (pretrained) models, or print one model's card",
                       description="Without NAME: one line per shipped model. With NAME: its MODEL_CARD.md. "
                                   "Load one in Python with plm_interp.pretrained.load_pretrained(NAME).")
    p.add_argument("name", nargs="?", help="a model name, to print its card")
    p.set_defaults(func=run)


def run(args) -> int:
    from plm_interp.pretrained import card, list_models, model_card

    if args.name:
        print(model_card(args.name), end="")
        return 0
    names = list_models()
    if not names:
        print("no shipped models")
        return 0
    for name in names:
        try:
            c = card(name)
            a = c["architecture"]
            print(f"{name:14s} {c['task']['summary']}; {a['n_layers']}L {a['n_heads']}H {a['d_model']}d "
                  f"{a['positional']}, {a['params']:,} params")
        except ValueError as exc:  # a broken model must not hide the others
            print(f"{name:14s} (unreadable card: {exc})")
    return 0
