"""Training engine: a task-agnostic trainer, DDP under torchrun, atomic checkpoints, exact resume.

    >>> from plm_interp.training import Trainer, TrainConfig, TaskSource, train

See ``docs/training.md`` for the run directory layout, the config file format and resume semantics.
"""
from plm_interp.training.checkpointing import CheckpointError, load_latest, save_checkpoint
from plm_interp.training.config import TrainConfig
from plm_interp.training.data import ShardedStream, TaskSource, make_loader
from plm_interp.training.metrics import MetricsLog, read_metrics
from plm_interp.training.optim import build_optimizer, build_scheduler, lr_factor, param_groups
from plm_interp.training.stop_signal import TrainingStopped
from plm_interp.training.trainer import (EvalCallback, NonFiniteLossError, Trainer, TrainResult, compile_model,
                                         lm_loss_fn, train)

__all__ = ["CheckpointError", "EvalCallback", "MetricsLog", "NonFiniteLossError", "ShardedStream", "TaskSource",
           "TrainConfig", "TrainResult", "Trainer", "TrainingStopped", "build_optimizer", "build_scheduler", "compile_model",
           "load_latest", "lm_loss_fn", "lr_factor", "make_loader", "param_groups", "read_metrics",
           "save_checkpoint", "train"]
