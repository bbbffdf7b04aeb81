"""``plm-interp info``: versions, positional schemes, presets, and a tiny forward pass per scheme."""
from __future__ import annotations

import time

import torch


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="print versions and schemes, and run a tiny forward pass per scheme")
    p.set_defaults(func=run)


def run(args) -> int:
    import transformer_lens

    import plm_interp
    from plm_interp import POSITIONAL_SCHEMES, PRESETS, HookedPLM, preset_config

    tl_version = getattr(transformer_lens, "__version__", None)
    if tl_version is None:
        from importlib.metadata import version

        tl_version = version("transformer-lens")
    print(f"plm-interp {plm_interp.__version__}  torch {torch.__version__}  transformer-lens {tl_version}")
    print(f"model presets: {', '.join(f'{k} {v}' for k, v in PRESETS.items())}")
    tokens = torch.randint(0, 16, (2, 32), generator=torch.Generator().manual_seed(0))
    for scheme in POSITIONAL_SCHEMES:
        model = HookedPLM(preset_config("tiny", d_vocab=16, n_ctx=64, positional=scheme, seed=0))
        start = time.perf_counter()
        logits, cache = model.run_with_cache(tokens)
        ms = (time.perf_counter() - start) * 1e3
        print(f"  {scheme:5s} logits {tuple(logits.shape)}  {len(cache)} hooks cached  {ms:.1f} ms")
    return 0
