"""The contract every task meets, so the trainer, the CLI and the analyses never special-case a task.

A task owns its tokenizer, its fresh-data stream and its ground truth. The trainer only sees
:class:`Batch` objects; analyses receive the task itself.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from jaxtyping import Bool, Int


@dataclass
class Batch:
    """One training batch: ``tokens[b, p]`` and an optional ``loss_mask[b, p]``.

    ``loss_mask[b, p]`` says whether the prediction *of* token ``p`` (made at position ``p - 1``) counts in the
    loss; ``None`` means every next-token prediction counts.
    """

    tokens: Int[torch.Tensor, "batch pos"]
    loss_mask: Bool[torch.Tensor, "batch pos"] | None = None


class Task(abc.ABC):
    """A synthetic task: tokenizer, fresh-sample stream, eval data and training presets."""

    #: registry name, e.g. ``"cfg"`` or ``"igsm"``
    kind: str = ""

    @property
    @abc.abstractmethod
    def d_vocab(self) -> int:
        """Number of token ids the model must embed (all ids used by the task are below this)."""

    @abc.abstractmethod
    def spec(self) -> dict[str, Any]:
        """A JSON-serialisable description from which :func:`from_spec` rebuilds an equal task."""

    @classmethod
    @abc.abstractmethod
    def from_spec(cls, spec: dict[str, Any]) -> "Task":
        """Inverse of :meth:`spec`."""

    @abc.abstractmethod
    def batches(self, batch_size: int, n_ctx: int, seed: int, start: int = 0) -> Iterator[Batch]:
        """An endless, reproducible stream of fresh training batches.

        The stream is a pure function of ``seed``; ``start`` skips the first ``start`` batches in O(1) (each
        batch is generated from its own derived seed), which gives exact resume and distinct worker shards.
        """

    def presets(self) -> dict[str, dict[str, Any]]:
        """Named training presets (model size, optimiser, budget); see each task's docs."""
        return {}


_REGISTRY: dict[str, Callable[[dict[str, Any]], Task]] = {}


def register_task(kind: str, factory: Callable[[dict[str, Any]], Task]) -> None:
    """Make ``from_spec({"kind": kind, ...})`` build tasks with ``factory``."""
    _REGISTRY[kind] = factory


def task_names() -> list[str]:
    """The registered task kinds (``"cfg"``, ``"igsm"``, ...), the names ``plm-interp train TASK`` accepts."""
    _load_builtin()
    return sorted(_REGISTRY)


def from_spec(spec: dict[str, Any]) -> Task:
    """Rebuild a task from :meth:`Task.spec` output (e.g. read back from a checkpoint's config)."""
    _load_builtin()
    kind = spec.get("kind") if isinstance(spec, dict) else None
    if kind not in _REGISTRY:
        raise ValueError(f"task spec field 'kind' = {kind!r} is not a registered task; known: {sorted(_REGISTRY)}")
    return _REGISTRY[kind](spec)


def _load_builtin() -> None:
    # Import lazily so that `import tasks` stays cheap and a broken optional task cannot break the others.
    import importlib

    for name in ("tasks.cfg", "tasks.igsm"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:  # the subpackage not built yet
            if exc.name != name:
                raise
