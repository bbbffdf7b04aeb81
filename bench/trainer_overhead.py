"""Trainer overhead: tokens/s of the full Trainer against a bare training loop, same model, data and run.

Both sides do the same arithmetic (forward, backward, grad clipping, AdamW with the same parameter groups,
the lr schedule) on the same pre-generated batches held in memory, so the difference is the trainer's own
machinery: DataLoader and device transfer, accumulation bookkeeping, tqdm, metrics JSONL, the final
checkpoint. Runs alternate (bare, trainer, bare, ...) to share the machine's noise; the median is reported.
Target: overhead <= 5%.

    python bench/trainer_overhead.py [--steps 20] [--rounds 5] [--preset small] [--n-ctx 64] [--batch 16] [--threads 1]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time

import torch

from plm_interp import HookedPLM, preset_config
from plm_interp.training import TrainConfig, Trainer, build_optimizer, build_scheduler


class MemorySource:
    """Batch ``i`` is ``batches[i % len(batches)]``: no generation cost on either side."""

    def __init__(self, batches: list[torch.Tensor]):
        self.batches, self.n_ctx = batches, batches[0].shape[1]

    def __call__(self, batch_size: int, seed: int, start: int = 0):
        i = start
        while True:
            yield self.batches[i % len(self.batches)]
            i += 1


def make_batches(n: int, batch: int, n_ctx: int) -> tuple[list[torch.Tensor], int]:
    """CFG demo-grammar data when tasks.cfg is available, else uniform random tokens."""
    try:
        from tasks.cfg import CFGTask

        task = CFGTask("demo")
        stream = task.batches(batch, n_ctx, seed=0)
        return [next(stream).tokens for _ in range(n)], task.d_vocab
    except ImportError:
        g = torch.Generator().manual_seed(0)
        return [torch.randint(0, 64, (batch, n_ctx), generator=g) for _ in range(n)], 64


def bare_loop(model, batches, cfg: TrainConfig, steps: int, device) -> float:
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, steps, cfg)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if device.type == "cuda" else None
    _sync(device)
    start = time.perf_counter()
    for step in range(steps):
        tokens = batches[step % len(batches)].to(device, non_blocking=True)
        if autocast is not None:
            with autocast:
                loss = model(tokens, return_type="loss")
        else:
            loss = model(tokens, return_type="loss")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    _sync(device)
    return time.perf_counter() - start


def trainer_run(model, batches, cfg: TrainConfig, device) -> float:
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(model, MemorySource(batches), cfg, run_dir)
        _sync(device)
        start = time.perf_counter()
        trainer.fit(resume=False)
        _sync(device)
        return time.perf_counter() - start


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--preset", default="small")
    p.add_argument("--n-ctx", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (1: stable timings on a shared machine)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    batches, d_vocab = make_batches(16, args.batch, args.n_ctx)
    base = HookedPLM(preset_config(args.preset, d_vocab=d_vocab, n_ctx=args.n_ctx, seed=0)).to(device)
    cfg = TrainConfig(batch_size=args.batch, max_steps=args.steps, log_every=10, ckpt_every=0, device=args.device,
                      warmup_steps=5, progress=True)
    tokens = args.steps * args.batch * args.n_ctx
    bare_loop(copy.deepcopy(base), batches, cfg, 3, device)  # warm-up (allocator, kernels), untimed
    bare, full = [], []
    for _ in range(args.rounds):
        bare.append(tokens / bare_loop(copy.deepcopy(base), batches, cfg, args.steps, device))
        full.append(tokens / trainer_run(copy.deepcopy(base), batches, cfg, device))
    b, f = statistics.median(bare), statistics.median(full)
    print(f"\ndevice {device} ({torch.get_num_threads()} CPU threads), model {args.preset} ({sum(p.numel() for p in base.parameters()):,} params), "
          f"batch {args.batch}x{args.n_ctx}, {args.steps} steps x {args.rounds} rounds (median)")
    print(f"  bare loop   {b:12,.0f} tokens/s   rounds: {', '.join(f'{x:,.0f}' for x in bare)}")
    print(f"  Trainer     {f:12,.0f} tokens/s   rounds: {', '.join(f'{x:,.0f}' for x in full)}")
    print(f"  overhead    {100 * (b - f) / b:+.1f}%  (target <= 5%)")


if __name__ == "__main__":
    main()
