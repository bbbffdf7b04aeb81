"""The training loop. It knows a model, a batch source and a TrainConfig, and nothing about tasks.

One optimiser step = ``grad_accum`` micro-batches per rank (DDP all-reduces the gradient once, on the last
one), optional clipping, AdamW, the schedule. Everything else (logging, eval callbacks, checkpoints) runs
every N steps, and the loss is read back from the device only then, so the loop does not stall the GPU.

Exact resume: a checkpoint holds weights, optimizer, scheduler, step, every rank's RNG states and the data
position; the data position is the step itself, because micro-batch ``u`` is always
``source(micro_batch, seed, start=u)`` (see :mod:`plm_interp.training.data`).

Example:
    >>> from plm_interp import HookedPLM, preset_config
    >>> from plm_interp.training import Trainer, TrainConfig
    >>> import itertools
    >>> def source(batch_size, seed, start=0):       # batch i depends only on (seed, i): O(1) skip
    ...     for i in itertools.count(start):
    ...         g = torch.Generator().manual_seed(seed * 1_000_003 + i)
    ...         yield torch.randint(0, 8, (batch_size, 16), generator=g)
    >>> source.n_ctx = 16
    >>> model = HookedPLM(preset_config("tiny", d_vocab=8, n_ctx=16, seed=0))
    >>> result = Trainer(model, source, TrainConfig(batch_size=4, max_steps=3, progress=False)).fit()
    >>> result.step
    3
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from plm_interp.training import checkpointing as ckpt
from plm_interp.training import distributed as D
from plm_interp.training import lock as run_lock
from plm_interp.training import stop_signal
from plm_interp.training.config import RUNTIME_KEYS, TrainConfig
from plm_interp.training.data import ShardedStream, make_loader
from plm_interp.training.metrics import MetricsLog
from plm_interp.training.optim import build_optimizer, build_scheduler

#: ``callback(model, step) -> {"name": value} | None``; run on rank 0, in eval mode, without gradients.
EvalCallback = Callable[[nn.Module, int], "dict[str, float] | None"]


def lm_loss_fn(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Default loss: the model's own (HookedPLM/TransformerLens convention ``return_type="loss"``); extra
    batch entries (``loss_mask``, ``targets``) are passed as keyword arguments."""
    extra = {k: v for k, v in batch.items() if k != "tokens"}
    return model(batch["tokens"], return_type="loss", **extra)


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or Inf; the message names the first such step and the last good checkpoint.

    ``step`` is that first step and ``last_good`` the newest complete checkpoint directory (None when none was
    saved), so a caller (the CLI) can say which command continues: see ``plm_app.commands.train``."""

    def __init__(self, message: str, step: int | None = None, last_good: Path | None = None):
        super().__init__(message)
        self.step, self.last_good = step, last_good


#: "no non-finite loss seen yet" in the step tracker (a min-reduction over ranks keeps the earliest step)
_NO_STEP = 2 ** 62


def compile_model(module: nn.Module, backend: bool | str = True) -> nn.Module:
    """``torch.compile(module)`` such that TransformerLens hooks added *after* compiling still run.

    By default Dynamo does not guard on module hooks (``skip_nnmodule_hook_guards``), so a hook added to a
    compiled HookedPLM after its first call is silently skipped: the output is the unhooked one
    (``tests/training/test_gpu_rehearsal.py`` shows it). Turning the guard on makes adding or removing a hook
    trigger a recompile instead. The setting is process-wide; it costs a guard check per call.
    """
    import torch._dynamo

    torch._dynamo.config.skip_nnmodule_hook_guards = False
    return torch.compile(module, backend="inductor" if backend is True else backend)


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns: steps and tokens done, the last logged loss, where it resumed from."""
    step: int  # optimiser steps done
    tokens: int  # tokens consumed (all ranks)
    loss: float | None  # last logged training loss
    resumed_from: int | None  # step of the checkpoint this run resumed from
    run_dir: Path | None


class Trainer:
    """Train ``model`` on ``source`` as ``cfg`` says; checkpoints and metrics go to ``run_dir`` (if given).

    Args:
        model: any ``nn.Module``; ``loss_fn(model, batch)`` must return a scalar loss.
        source: a batch source (see :mod:`plm_interp.training.data`), picklable if ``num_workers > 0``.
        cfg: the :class:`TrainConfig`.
        run_dir: where ``metrics.jsonl`` and ``checkpoints/`` go; ``None`` keeps everything in memory.
        callbacks: evaluation callbacks, run every ``cfg.eval_every`` steps and at the end.
    """

    def __init__(self, model: nn.Module, source, cfg: TrainConfig, run_dir: str | Path | None = None,
                 callbacks: Iterable[EvalCallback] = (), loss_fn=lm_loss_fn, dist_info: D.DistInfo | None = None):
        self.cfg, self.source, self.loss_fn = cfg, source, loss_fn
        self.callbacks = list(callbacks)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        cfg.validate()  # the machine can do what cfg asks (device, precision), before anything is moved or written
        self.info = dist_info or D.init_from_env(cfg.device)
        self.device = D.resolve_device(cfg.device, self.info)
        self.accum = cfg.grad_accum(self.info.world_size)
        self.micro = cfg.micro_batch(self.info.world_size)
        self.total_steps = cfg.total_steps(source.n_ctx)
        if (warmup := cfg.warmup_warning(self.total_steps)) is not None and self.info.is_main:
            warnings.warn(warmup, stacklevel=2)
        if cfg.lora is not None:  # LoRA: base frozen, only the adapters train (plm_interp.training.lora)
            from plm_interp.training.lora import LoRAConfig, adapters, apply_lora
            if not adapters(model):
                apply_lora(model, LoRAConfig.from_dict(cfg.lora))
        self.model = model.to(self.device)
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = build_scheduler(self.optimizer, self.total_steps, cfg)
        self.step, self.tokens = 0, 0
        self._window: tuple[Any, int] = (0.0, 0)  # loss sum and micro-batches since the last logged record
        self._stop: stop_signal.StopRequest | None = None  # set while fit() runs with a run_dir
        use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and self.device.type == "cuda")
        self._autocast = (lambda: torch.autocast(self.device.type, dtype=torch.bfloat16)) if use_bf16 \
            else contextlib.nullcontext
        wrapped = self.model
        if self.info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            wrapped = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self._ddp = wrapped if self.info.enabled else None
        self.forward_model = compile_model(wrapped, cfg.compile) if cfg.compile else wrapped

    # -- public ----------------------------------------------------------------------------------------------

    def fit(self, resume: bool = True) -> TrainResult:
        """Train to the budget, resuming from the newest valid checkpoint in ``run_dir`` if ``resume``.

        ``run_dir`` is locked for the whole call (:mod:`plm_interp.training.lock`): a second writer is refused
        naming this process. A NaN/Inf loss stops training with :class:`NonFiniteLossError`; no checkpoint is
        written after it, so the newest one on disk is the last good one. With a ``run_dir``, SIGTERM / SIGINT
        stop training after the current step and a checkpoint of it (:mod:`plm_interp.training.stop_signal`,
        :class:`TrainingStopped`); under DDP the ranks agree on it at the next ``log_every`` step.
        """
        lock = self._lock()
        catching = stop_signal.stop_on_signals() if self.run_dir is not None else contextlib.nullcontext(None)
        try:
            with catching as self._stop:
                return self._fit(resume)
        finally:
            if lock is not None:
                run_lock.release(lock)

    def _lock(self) -> run_lock.RunDirLock | None:
        if self.run_dir is None:
            return None
        lock, error = None, None
        if self.info.is_main:
            try:
                lock = run_lock.acquire(self.run_dir)
            except run_lock.RunDirLocked as exc:
                error = str(exc)
            else:
                if lock.stale:
                    self._report(lock.stale)
        error = D.broadcast_object(error, self.info)  # every rank stops, not only rank 0
        if error is not None:
            raise run_lock.RunDirLocked(error)
        return lock

    def _fit(self, resume: bool) -> TrainResult:
        metrics = MetricsLog(self.run_dir, self.cfg.tensorboard, enabled=self.info.is_main)
        resumed_from = self._resume(metrics) if resume and self.run_dir is not None else None
        if resumed_from is None:  # starting at step 0: records of an earlier attempt that saved no checkpoint go
            metrics.truncate_after(0)
        stream = ShardedStream(self.source, self.micro, self.cfg.seed, self.info.rank, self.info.world_size,
                               start=self.step * self.accum)
        loader = make_loader(stream, self.cfg.num_workers, self.cfg.prefetch_factor,
                             pin_memory=self.device.type == "cuda")
        bar = tqdm(total=self.total_steps, initial=self.step, unit="step", dynamic_ncols=True,
                   disable=not (self.cfg.progress and self.info.is_main))
        last_loss = None
        try:
            last_loss = self._loop(iter(loader), metrics, bar)
        finally:
            bar.close()
            metrics.close()
        return TrainResult(self.step, self.tokens, last_loss, resumed_from, self.run_dir)

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs; RNG states of all ranks (a collective call under DDP)."""
        return {"format_version": ckpt.FORMAT_VERSION, "step": self.step, "tokens": self.tokens,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "rng": D.gather_objects(ckpt.capture_rng(), self.info),
                "data": self._data_position(), "train_config": self.cfg.to_dict(),
                "torch_threads": torch.get_num_threads(),
                "log_window": D.gather_objects([float(self._window[0]), int(self._window[1])], self.info)}

    # -- the loop --------------------------------------------------------------------------------------------

    def _loop(self, batches, metrics: MetricsLog, bar) -> float | None:
        cfg, last_loss = self.cfg, None
        # the losses since the last logged record (restored on resume, so the first record after it averages
        # the same steps as in an uninterrupted run, not only those since the restart)
        loss_sum, n_micro = torch.full((), self._window[0], device=self.device), self._window[1]
        grad_norm = None
        # First step whose loss was NaN/Inf, tracked on the device (no sync per step), read at log/ckpt time.
        bad_step = torch.full((), _NO_STEP, dtype=torch.int64, device=self.device)
        clock, tokens_at_clock = time.perf_counter(), self.tokens
        self.model.train()
        while self.step < self.total_steps:
            lr = self.optimizer.param_groups[0]["lr"]
            loss_before = loss_sum.clone()
            for a in range(self.accum):
                batch = {k: v.to(self.device, non_blocking=True) for k, v in next(batches).items()}
                sync = self._ddp is None or a == self.accum - 1
                with contextlib.nullcontext() if sync else self._ddp.no_sync():
                    with self._autocast():
                        loss = self.loss_fn(self.forward_model, batch)
                    (loss / self.accum).backward()
                loss_sum += loss.detach().float()
                n_micro += 1
                self.tokens += batch["tokens"].numel() * self.info.world_size
            if cfg.grad_clip > 0:
                grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            bad_step = torch.where(torch.isfinite(loss_sum - loss_before), bad_step,
                                   torch.clamp(bad_step, max=self.step))
            bar.update(1)
            done = self.step == self.total_steps
            saving = self.run_dir is not None and ((cfg.ckpt_every and self.step % cfg.ckpt_every == 0) or done)
            logging = self.step % cfg.log_every == 0 or done
            if logging or saving:
                self._check_finite(bad_step)
            if logging:
                last_loss = D.all_reduce_mean(loss_sum / n_micro, self.info).item()
                now = time.perf_counter()
                rate = (self.tokens - tokens_at_clock) / max(now - clock, 1e-9)
                record = {"step": self.step, "loss": last_loss, "lr": lr, "tokens": self.tokens,
                          "tokens_per_s": round(rate, 1)}
                if grad_norm is not None:
                    record["grad_norm"] = grad_norm.item()
                metrics.log(record)
                bar.set_postfix(loss=f"{last_loss:.4f}", tok_s=f"{rate:,.0f}", lr=f"{lr:.2e}", refresh=False)
                loss_sum.zero_()
                n_micro, clock, tokens_at_clock = 0, now, self.tokens
            if self.callbacks and ((cfg.eval_every and self.step % cfg.eval_every == 0) or done):
                self._evaluate(metrics)
            self._window = (loss_sum, n_micro)  # what a checkpoint of this step records
            if saving:
                self._save()
            if not done and self._stop_requested(logging):
                if not saving:
                    self._check_finite(bad_step)
                    self._save()
                raise stop_signal.TrainingStopped(self._stop.signum, self.step,
                                                  ckpt.checkpoint_dir(self.checkpoint_root, self.step))
        return last_loss

    def _stop_requested(self, synced_step: bool) -> bool:
        """Whether a stop signal arrived; one process checks every step, DDP ranks agree at log steps (one
        all-reduce there, none per step)."""
        if self._stop is None:
            return False
        if not self.info.enabled:
            return self._stop.signum is not None
        if not synced_step:
            return False
        negated = torch.tensor(-(self._stop.signum or 0), device=self.device)  # min over ranks: any rank's signal
        self._stop.signum = -int(D.all_reduce_min(negated, self.info).item()) or None
        return self._stop.signum is not None

    def _check_finite(self, bad_step: torch.Tensor) -> None:
        """Raise :class:`NonFiniteLossError` if any rank saw a NaN/Inf loss (one sync, at log/ckpt steps only)."""
        first = D.all_reduce_min(bad_step.clone(), self.info).item()
        if first == _NO_STEP:
            return
        last_good = None
        if self.run_dir is not None and self.info.is_main:
            last_good = next((d for _, d in ckpt.list_checkpoints(self.checkpoint_root)
                              if (d / ckpt.MANIFEST).is_file()), None)
        where = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was saved before it"
        raise NonFiniteLossError(
            f"training stopped: the loss became NaN or Inf at step {first} (noticed at step {self.step}); nothing "
            f"after it was saved, {where}. Lower train.lr, raise train.warmup_steps, or check the data and the "
            "model config (e.g. rotary_base, dtype)", step=first, last_good=last_good)

    def _evaluate(self, metrics: MetricsLog) -> None:
        if self.info.is_main:
            self.model.eval()
            results: dict[str, float] = {}
            with torch.no_grad():
                for callback in self.callbacks:
                    results.update(callback(self.model, self.step) or {})
            self.model.train()
            if results:
                metrics.log({"step": self.step, **{f"eval/{k}": v for k, v in results.items()}})
        D.barrier(self.info)

    # -- checkpoints -----------------------------------------------------------------------------------------

    @property
    def checkpoint_root(self) -> Path:
        """``run_dir/checkpoints``: the resumable training checkpoints (the newest ``keep_checkpoints`` of them)."""
        return self.run_dir / "checkpoints"

    def _data_position(self) -> dict[str, int]:
        return {"seed": self.cfg.seed, "batch_size": self.cfg.batch_size, "micro_batch": self.micro,
                "micro_batches_consumed": self.step * self.cfg.batch_size // self.micro}

    def _save(self) -> None:
        state = self.state_dict()  # collective: every rank contributes its RNG state
        if self.info.is_main:
            ckpt.save_checkpoint(self.checkpoint_root, self.step, state, keep=self.cfg.keep_checkpoints)
        D.barrier(self.info)

    def _resume(self, metrics: MetricsLog) -> int | None:
        found = ckpt.load_latest(self.checkpoint_root, report=self._report) if self.info.is_main else None
        directory = D.broadcast_object(str(found[1]) if found else None, self.info)
        if directory is None:
            return None
        state = found[0] if found else torch.load(Path(directory) / ckpt.STATE, map_location="cpu",
                                                  weights_only=True)
        self._check_compatible(state["data"], directory)
        self._check_same_training(state.get("train_config"), directory)
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:  # e.g. a checkpoint of another model size
            first = str(exc).strip().splitlines()
            raise ckpt.CheckpointError(
                f"cannot resume from {directory}: its weights do not fit this model ({' '.join(first[:3])[:400]}); "
                "resume with the model config the run was trained with, or start in another run directory") \
                from None
        self.scheduler.load_state_dict(state["scheduler"])
        self._restore_threads(state.get("torch_threads"), directory)
        rng = state["rng"]
        ckpt.restore_rng(rng[self.info.rank] if len(rng) == self.info.world_size else rng[0])
        self.step, self.tokens = state["step"], state["tokens"]
        window = state.get("log_window")  # absent in checkpoints written before it existed: start a new window
        if window:
            mine = window[self.info.rank] if len(window) == self.info.world_size else window[0]
            self._window = (float(mine[0]), int(mine[1]))
        if self.info.is_main:
            ckpt.set_aside_newer(self.checkpoint_root, self.step)
            metrics.truncate_after(self.step)
            self._report(f"resumed from {directory} (step {self.step} of {self.total_steps})")
        D.barrier(self.info)
        return self.step

    def _check_same_training(self, saved: dict[str, Any] | None, directory: str) -> None:
        """Refuse to resume a checkpoint trained with other settings (lr, schedule, betas, ...): the optimizer and
        scheduler state come from the checkpoint, so the run would silently follow neither the old settings nor
        the new ones (e.g. config.json removed and the run restarted with another lr). Keys in
        :data:`~plm_interp.training.config.RUNTIME_KEYS` may differ."""
        if saved is None:
            return
        now = self.cfg.to_dict()
        diffs = [f"train.{k}: checkpoint {saved.get(k)!r}, now {now.get(k)!r}" for k in sorted(set(now) | set(saved))
                 if k not in RUNTIME_KEYS and saved.get(k) != now.get(k)]
        if diffs:
            raise ValueError(f"cannot resume from {directory}: it was trained with other settings ({'; '.join(diffs)})"
                             "; resume with the settings it was trained with, or start in another run directory")

    def _restore_threads(self, saved: int | None, directory: str) -> None:
        """Resume with the torch thread count the run was trained with (recorded in every checkpoint): CPU
        matmuls sum in a thread-dependent order, so 1 vs 2 threads differ by ~1e-7 and a resumed run would not
        be bit-identical. An explicit ``PLM_THREADS`` that disagrees wins, with a note that identity is lost."""
        if saved is None or self.device.type != "cpu" or saved == torch.get_num_threads():
            return
        if os.environ.get("PLM_THREADS"):
            self._report(f"PLM_THREADS={os.environ['PLM_THREADS']} runs {torch.get_num_threads()} torch thread(s), "
                         f"{directory} was trained with {saved}: the resumed weights may differ from an "
                         "uninterrupted run in the last bits")
            return
        self._report(f"using {saved} torch thread(s), as {directory} was trained with (bit-identical resume)")
        torch.set_num_threads(saved)

    def _check_compatible(self, saved: dict[str, int], directory: str) -> None:
        now = self._data_position()
        for key in ("seed", "batch_size", "micro_batch"):
            if saved[key] != now[key]:
                raise ValueError(f"cannot resume from {directory}: its data stream used {key} = {saved[key]}, "
                                 f"this run uses {now[key]} (the batches would differ from the interrupted run)")

    def _report(self, message: str) -> None:
        if self.info.is_main:
            tqdm.write(f"[train] {message}", file=sys.stderr)


def train(model: nn.Module, source, cfg: TrainConfig, run_dir: str | Path | None = None, resume: bool = True,
          **kwargs) -> TrainResult:
    """Shorthand for ``Trainer(model, source, cfg, run_dir, **kwargs).fit(resume)``."""
    return Trainer(model, source, cfg, run_dir, **kwargs).fit(resume=resume)
