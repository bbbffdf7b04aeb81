"""Data sharding: same global stream on any number of ranks and workers; distinct worker seeds."""
from __future__ import annotations

import itertools

import torch
from train_helpers import source

from plm_interp.training import ShardedStream, make_loader


def _take(iterable, n):
    return [b["tokens"] for b in itertools.islice(iterable, n)]


def test_ranks_partition_the_single_process_stream():
    src = source()
    single = _take(ShardedStream(src, 2, seed=5), 12)
    ranks = [_take(ShardedStream(src, 2, seed=5, rank=r, world_size=3), 4) for r in range(3)]
    interleaved = [ranks[m % 3][m // 3] for m in range(12)]
    assert all(torch.equal(a, b) for a, b in zip(single, interleaved))


def test_start_skips_exactly():
    src = source()
    full = _take(ShardedStream(src, 2, seed=5, rank=1, world_size=2), 7)
    tail = _take(ShardedStream(src, 2, seed=5, rank=1, world_size=2, start=3), 4)
    assert all(torch.equal(a, b) for a, b in zip(full[3:], tail))


def test_worker_count_does_not_change_the_stream():
    src = source()
    ref = _take(ShardedStream(src, 4, seed=1, rank=1, world_size=2, start=2), 9)
    loader = make_loader(ShardedStream(src, 4, seed=1, rank=1, world_size=2, start=2), num_workers=2,
                         prefetch_factor=2)
    got = _take(loader, 9)
    assert all(torch.equal(a, b) for a, b in zip(ref, got))


def _global_rng_source(batch_size, seed, start=0):  # a badly-behaved source: draws from torch's global RNG
    while True:
        yield torch.randint(0, 10**6, (batch_size, 2))


_global_rng_source.n_ctx = 2


def test_each_worker_and_rank_gets_its_own_reproducible_seed():
    def draw(rank):
        loader = make_loader(ShardedStream(_global_rng_source, 1, seed=3, rank=rank, world_size=2),
                             num_workers=2, prefetch_factor=1)
        return [t.flatten().tolist() for t in _take(loader, 2)]  # one batch from each worker
    rank0, rank1 = draw(0), draw(1)
    assert rank0[0] != rank0[1] and rank0 != rank1  # distinct per worker and per rank
    assert draw(0) == rank0  # and reproducible


def test_masked_task_source_is_the_tasks_mlm_stream():
    """masked=True yields the task's masked-LM batches with target -100 wherever no loss is taken."""
    import torch

    from plm_interp.training import TaskSource
    from tasks.cfg import CFGTask

    task = CFGTask("demo")
    got = next(TaskSource(task, 64, masked=True)(4, seed=3, start=2))
    ref = next(task.mlm_batches(4, 64, 3, start=2))
    assert torch.equal(got["tokens"], ref.tokens)
    assert torch.equal(got["targets"] != -100, ref.loss_mask)
    assert torch.equal(got["targets"][ref.loss_mask], ref.targets[ref.loss_mask])


def test_bidirectional_model_needs_a_masked_stream():
    import pytest

    from plm_interp.training import TaskSource
    from plm_app.runconfig import ConfigError, resolve
    from tasks.igsm import IGSMTask

    with pytest.raises(ValueError, match="masked"):
        TaskSource(IGSMTask("tiny"), 64, masked=True)
    with pytest.raises(ConfigError, match="bidirectional"):
        resolve("igsm", {"task": {"preset": "tiny"}, "model": {"preset": "tiny", "attention_dir": "bidirectional"},
                         "train": {"max_steps": 1}})
    rc = resolve("cfg", {"task": {"grammar": "demo"}, "model": {"preset": "tiny", "n_ctx": 64,
                                                                 "attention_dir": "bidirectional"},
                         "train": {"max_steps": 1}})
    assert rc.model.attention_dir == "bidirectional"
