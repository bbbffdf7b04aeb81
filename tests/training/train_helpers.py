"""A tiny synthetic task and a training script for the trainer's tests (subprocesses run this file).

``CountTask``: each sequence counts up mod ``d_vocab`` from a random start, so a tiny model learns it in a
few dozen steps; batch ``i`` depends only on ``(seed, i)`` (the Task contract's O(1) ``start``).

As a script (used for SIGKILL and torchrun tests)::

    python train_helpers.py RUN_DIR --steps 24 [--kill-at 7 --kill-phase step|ckpt-state|ckpt-manifest]
                                               [--term-at 5]  (SIGTERM to rank 0 only, after step 5)
"""
from __future__ import annotations

import argparse
import itertools
import os
import signal
import sys
from typing import Any, Iterator

import torch

from plm_interp import HookedPLM, preset_config
from plm_interp.training import TaskSource, TrainConfig, Trainer, TrainingStopped
from plm_interp.training.data import derived_seed
from tasks.base import Batch, Task, register_task

VOCAB, N_CTX = 16, 16


class CountTask(Task):
    kind = "count_test"

    def __init__(self, vocab: int = VOCAB):
        self.vocab = vocab

    @property
    def d_vocab(self) -> int:
        return self.vocab

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "vocab": self.vocab}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> "CountTask":
        return cls(spec.get("vocab", VOCAB))

    def batches(self, batch_size: int, n_ctx: int, seed: int, start: int = 0) -> Iterator[Batch]:
        for i in itertools.count(start):
            g = torch.Generator().manual_seed(derived_seed(seed, i))
            first = torch.randint(0, self.vocab, (batch_size, 1), generator=g)
            tokens = (first + torch.arange(n_ctx)) % self.vocab
            loss_mask = torch.rand(batch_size, n_ctx, generator=g) < 0.8
            yield Batch(tokens=tokens, loss_mask=loss_mask)


register_task(CountTask.kind, CountTask.from_spec)


class SequenceSource:
    """Batch ``i`` of size ``b`` holds sequences ``i*b .. i*b+b-1`` of one fixed sequence stream, without a
    loss mask: so 4 batches of 2 are exactly 1 batch of 8 (for gradient-accumulation equivalence)."""

    n_ctx = N_CTX

    def __call__(self, batch_size: int, seed: int, start: int = 0) -> Iterator[Batch]:
        for i in itertools.count(start):
            firsts = [torch.randint(0, VOCAB, (1,), generator=torch.Generator().manual_seed(derived_seed(seed, j)))
                      for j in range(i * batch_size, (i + 1) * batch_size)]
            yield Batch(tokens=(torch.stack(firsts) + torch.arange(self.n_ctx)) % VOCAB)


def tiny_model(seed: int = 0, positional: str = "rot") -> HookedPLM:
    return HookedPLM(preset_config("tiny", d_vocab=VOCAB, n_ctx=N_CTX, positional=positional, seed=seed))


def source() -> TaskSource:
    return TaskSource(CountTask(), N_CTX)


def small_config(**overrides) -> TrainConfig:
    fields = dict(batch_size=8, max_steps=24, lr=3e-3, warmup_steps=3, schedule="cosine", log_every=1,
                  ckpt_every=4, keep_checkpoints=2, progress=False, seed=0)
    fields.update(overrides)
    return TrainConfig(**fields)


def state_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _install_kill(phase: str, step: int, callbacks: list) -> None:
    """Arrange for this process to SIGKILL itself at ``step``: mid-training, or mid-checkpoint-write."""
    from plm_interp.training import checkpointing

    die = lambda: os.kill(os.getpid(), signal.SIGKILL)  # noqa: E731
    if phase == "step":
        callbacks.append(lambda model, s: die() if s == step else None)
    elif phase == "ckpt-state":  # state.pt half-written to its temp file, never renamed
        real_save = torch.save

        def save(obj, f, *a, **k):
            if isinstance(obj, dict) and obj.get("step") == step:
                f.write(b"partial")  # the checkpoint writer hands torch.save an open file
                die()
            return real_save(obj, f, *a, **k)
        checkpointing.torch.save = save
    elif phase == "ckpt-manifest":  # state.pt in place, manifest never written
        real_write = checkpointing.atomic_write_json

        def write(path, obj):
            if obj.get("step") == step:
                die()
            return real_write(path, obj)
        checkpointing.atomic_write_json = write
    else:
        raise ValueError(phase)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--micro", type=int, default=None)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--kill-at", type=int, default=None)
    p.add_argument("--kill-phase", default="step")
    p.add_argument("--term-at", type=int, default=None)
    p.add_argument("--source", choices=["count", "seq"], default="count")
    p.add_argument("--compile", default=None, help="train.compile: a torch.compile backend name")
    p.add_argument("--positional", default="rot")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    callbacks: list = []
    if args.kill_at is not None:
        _install_kill(args.kill_phase, args.kill_at, callbacks)
    if args.term_at is not None:  # on every rank, so each meets the evaluation barrier; only rank 0 is signalled
        rank0 = os.environ.get("RANK", "0") == "0"
        callbacks.append(lambda model, s: os.kill(os.getpid(), signal.SIGTERM) if rank0 and s == args.term_at else None)
    cfg = small_config(max_steps=args.steps, batch_size=args.batch, micro_batch_size=args.micro,
                       num_workers=args.workers, eval_every=1 if callbacks else 0, compile=args.compile or False)
    data = source() if args.source == "count" else SequenceSource()
    trainer = Trainer(tiny_model(positional=args.positional), data, cfg, args.run_dir, callbacks=callbacks)
    try:
        trainer.fit(resume=True)
    except TrainingStopped as exc:
        print(f"[helper] {exc}", file=sys.stderr)
        return exc.exit_code
    if trainer.info.is_main:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in trainer.model.state_dict().items()},
                  os.path.join(args.run_dir, "final.safetensors"))
    from plm_interp.training import distributed
    distributed.shutdown(trainer.info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
