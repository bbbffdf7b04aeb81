"""P5: training-step throughput of HookedPLM beside transformers' Llama (SDPA) and GPT-2, same run.

One step = forward + backward + AdamW update on a fresh random batch. Every model gets the same
d_model / n_layers / n_heads / context / batch; Llama's MLP width is chosen so its
gated MLP has the same parameter count as our 4·d_model MLP (i = 8·d_model/3). Models are timed round-robin
(one step each in turn) so machine noise hits all of them alike; the median step time is reported.

    python bench/train_step.py                      # CPU shape (d_model 256, 4 layers, ctx 256, batch 8)
    python bench/train_step.py --preset gpt2-small  # on a GPU: bf16 autocast, MFU reported
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from plm_interp import POSITIONAL_SCHEMES, HookedPLM, PLMConfig

SHAPES = {
    "cpu": dict(d_model=256, n_layers=4, n_heads=4, n_ctx=256, batch=8, d_vocab=512),
    "gpt2-small": dict(d_model=768, n_layers=12, n_heads=12, n_ctx=512, batch=32, d_vocab=512),
}
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def ours(shape, scheme, device):
    cfg = PLMConfig(d_model=shape["d_model"], n_layers=shape["n_layers"], n_heads=shape["n_heads"],
                    d_vocab=shape["d_vocab"], n_ctx=shape["n_ctx"], positional=scheme, seed=0, device=device)
    model = HookedPLM(cfg).train()  # training mode: the fused path (a new model starts in eval mode)
    return model, lambda tokens: model(tokens, return_type="loss")


def ours_cached(shape, device):
    """rot with every hook point caching (what run_with_cache does), to price the hooks themselves."""
    model, _ = ours(shape, "rot", device)

    def step(tokens):
        store = {}
        hooks = [(name, lambda x, hook: store.__setitem__(hook.name, x.detach())) for name in model.hook_dict]
        with model.hooks(fwd_hooks=hooks):
            return model(tokens, return_type="loss")
    return model, step


def hf(shape, kind, device):
    import transformers

    d, L, H = shape["d_model"], shape["n_layers"], shape["n_heads"]
    if kind == "llama":
        cfg = transformers.LlamaConfig(hidden_size=d, intermediate_size=8 * d // 3, num_hidden_layers=L,
                                       num_attention_heads=H, num_key_value_heads=H, vocab_size=shape["d_vocab"],
                                       max_position_embeddings=shape["n_ctx"], attn_implementation="sdpa",
                                       tie_word_embeddings=False)
        model = transformers.LlamaForCausalLM(cfg)
    else:
        cfg = transformers.GPT2Config(n_embd=d, n_layer=L, n_head=H, vocab_size=shape["d_vocab"],
                                      n_positions=shape["n_ctx"], attn_implementation="sdpa")
        model = transformers.GPT2LMHeadModel(cfg)
    model.to(device)
    return model, lambda tokens: model(input_ids=tokens, labels=tokens).loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=list(SHAPES), default=None)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--schemes", default=",".join(POSITIONAL_SCHEMES))
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    shape = SHAPES[args.preset or ("gpt2-small" if device == "cuda" else "cpu")]
    torch.manual_seed(0)
    entries = {f"ours-{s}": ours(shape, s, device) for s in args.schemes.split(",")}
    entries["ours-rot+all-hooks"] = ours_cached(shape, device)
    entries["hf-llama(sdpa)"] = hf(shape, "llama", device)
    entries["hf-gpt2(sdpa)"] = hf(shape, "gpt2", device)
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4) for k, (m, _) in entries.items()}
    times: dict[str, list[float]] = {k: [] for k in entries}
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    tokens_per_step = shape["batch"] * shape["n_ctx"]
    for step in range(args.steps + 2):  # two warm-up rounds
        for name, (model, loss_fn) in entries.items():
            tokens = torch.randint(0, shape["d_vocab"], (shape["batch"], shape["n_ctx"]), device=device)
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            with amp:
                loss = loss_fn(tokens)
            loss.backward()
            opts[name].step()
            opts[name].zero_grad(set_to_none=True)
            if device == "cuda":
                torch.cuda.synchronize()
            if step >= 2:
                times[name].append(time.perf_counter() - start)
    llama = tokens_per_step / statistics.median(times["hf-llama(sdpa)"])
    gpu = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"shape {shape}  device {gpu}  steps {args.steps} (median)")
    print(f"{'model':22s} {'params':>10s} {'tokens/s':>12s} {'vs llama':>9s}" + ("   MFU" if device == "cuda" else ""))
    for name, (model, _) in entries.items():
        n_params = sum(p.numel() for p in model.parameters())
        tps = tokens_per_step / statistics.median(times[name])
        line = f"{name:22s} {n_params:10,d} {tps:12,.0f} {tps / llama:8.2f}x"
        if device == "cuda":
            flops = 6 * n_params + 12 * shape["n_layers"] * shape["d_model"] * shape["n_ctx"]
            peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in gpu), None)
            line += f"  {flops * tps / (peak * 1e12):5.1%}" if peak else "   n/a"
        print(line)


if __name__ == "__main__":
    main()
