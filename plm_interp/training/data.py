"""Feeding the trainer: a batch source, sharded over ranks and DataLoader workers by batch index.

The trainer never sees a task. It sees a *batch source*: any picklable callable
``source(batch_size, seed, start) -> Iterator[Batch]`` with an ``n_ctx`` attribute, whose stream is a pure
function of ``seed`` and whose ``start`` skips batches in O(1) (the :class:`tasks.base.Task` contract;
:class:`TaskSource` adapts a task).

Why shard by index instead of giving each worker its own seed: the unit of data is the micro-batch with
global index ``u``, always ``source(micro_batch, seed, start=u)``. Rank ``r`` of ``R`` takes its ``m``-th
micro-batch from ``u = m * R + r``, and DataLoader worker ``w`` of ``W`` produces that rank's micro-batches
``m ≡ w (mod W)`` (the DataLoader reads workers round-robin, so the order is fixed). Hence

* an optimiser step sees the same global batch on 1 process or N (same loss curve under DDP);
* the data position is one integer (optimiser steps done), so resume is exact and O(1);
* the stream does not depend on the number of workers.

Each worker also seeds ``torch``/``numpy``/``random`` with a distinct seed derived from (seed, rank, worker),
so a source that (wrongly) draws from global RNGs still gets different, reproducible numbers per worker.
"""
from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info


@dataclass
class TaskSource:
    """Adapt a task to a batch source: next-token batches (``task.batches``) or, with ``masked=True``, the task's
    masked-LM stream (``task.mlm_batches``, for a bidirectional encoder) as ``{"tokens", "targets"}`` with
    target -100 where nothing is predicted. Why one adapter: a bidirectional model trained on next-token loss
    sees the token it predicts, so the objective must follow the model, never be chosen separately."""

    task: Any
    n_ctx: int
    masked: bool = False

    def __post_init__(self) -> None:
        if self.masked and not hasattr(self.task, "mlm_batches"):
            raise ValueError(f"TaskSource field 'masked' = True: task {getattr(self.task, 'kind', self.task)!r} "
                             "has no masked-LM stream (mlm_batches)")

    def __call__(self, batch_size: int, seed: int, start: int = 0) -> Iterator[Any]:
        if not self.masked:
            return self.task.batches(batch_size, self.n_ctx, seed, start=start)
        return (
            {"tokens": b.tokens, "targets": torch.where(b.loss_mask, b.targets, torch.full_like(b.targets, -100))}
            for b in self.task.mlm_batches(batch_size, self.n_ctx, seed, start=start)
        )


def as_dict(batch: Any) -> dict[str, torch.Tensor]:
    """A batch as ``{"tokens": ..., "loss_mask": ...}`` (a dict pins and moves with DataLoader's helpers)."""
    if isinstance(batch, torch.Tensor):
        return {"tokens": batch}
    if isinstance(batch, dict):
        return {k: v for k, v in batch.items() if v is not None}
    out = {"tokens": batch.tokens}
    if getattr(batch, "loss_mask", None) is not None:
        out["loss_mask"] = batch.loss_mask
    return out


def derived_seed(*parts: int) -> int:
    """A 63-bit seed from integers, stable across processes and Python versions (unlike ``hash``)."""
    digest = hashlib.sha256(",".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class ShardedStream(IterableDataset):
    """This rank's micro-batches from micro-step ``start`` on; see the module docstring for the layout."""

    def __init__(self, source, micro_batch: int, seed: int, rank: int = 0, world_size: int = 1, start: int = 0):
        super().__init__()
        self.source, self.micro_batch, self.seed = source, micro_batch, seed
        self.rank, self.world_size, self.start = rank, world_size, start

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = get_worker_info()
        n_workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        m = self.start + worker
        if n_workers == 1 and self.world_size == 1:  # contiguous: one generator, no per-batch restarts
            for batch in self.source(self.micro_batch, self.seed, start=m):
                yield as_dict(batch)
            return
        while True:
            unit = m * self.world_size + self.rank
            yield as_dict(next(iter(self.source(self.micro_batch, self.seed, start=unit))))
            m += n_workers

    def unit_index(self, m: int) -> int:
        """Global micro-batch index of this rank's ``m``-th micro-batch."""
        return m * self.world_size + self.rank


def _seed_worker(worker_id: int, seed: int, rank: int) -> None:
    torch.set_num_threads(1)  # a data worker beside the trainer's threads must not start one thread per core
    s = derived_seed(seed, rank, worker_id)
    torch.manual_seed(s)
    np.random.seed(s % 2**32)
    random.seed(s)


def make_loader(stream: ShardedStream, num_workers: int = 0, prefetch_factor: int = 4,
                pin_memory: bool = False) -> DataLoader:
    """A DataLoader over ``stream``: worker processes, pinned memory, prefetch; global RNG left untouched."""
    return DataLoader(
        stream,
        batch_size=None,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=prefetch_factor if num_workers else None,
        worker_init_fn=functools.partial(_seed_worker, seed=stream.seed, rank=stream.rank),
        # DataLoader draws its base seed from this generator, not the global one, so creating a loader does
        # not shift the main process' RNG (exact resume compares RNG-dependent code paths bit for bit).
        generator=torch.Generator().manual_seed(derived_seed(stream.seed, stream.rank, -1)),
    )
