"""The contract every task meets, so the trainer, the CLI and the analyses never special-case a task.

A task owns its tokenizer, its fresh-data stream and its ground truth. The trainer only sees
:class:`Batch` objects (:class:`Task`); analyses receive the task itself and rely on more of it, declared in
:class:`AnalysableTask` (every analysis) and :class:`CFGAnalysisTask` / :class:`IGSMAnalysisTask` (the analyses
of one kind). ``tests/test_task_contract.py`` checks that ``CFGTask`` and ``IGSMTask`` meet all of it.

Task kinds are registered in one place, :data:`_REGISTRY`, by :func:`register_task` (also a class decorator);
the built-in subpackages of ``tasks`` and the entry points of the group ``plm_interp.tasks`` are found on the
first lookup.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol, runtime_checkable

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
        """Named training presets: ``{name: {"model": {...}, "train": {...}}}`` in the keys of
        :class:`~plm_interp.config.PLMConfig` and :class:`~plm_interp.training.TrainConfig` themselves (so a
        preset is checked like a config file); see each task's docs."""
        return {}


@runtime_checkable
class AnalysableTask(Protocol):
    """What every analysis may use of a task (beyond :class:`Task`'s training contract)."""

    kind: str
    tokenizer: Any  # ``encode`` / ``decode`` between words and ids, ``vocab``, ``d_vocab``

    @property
    def d_vocab(self) -> int:
        """Number of token ids the model must embed."""

    def spec(self) -> dict[str, Any]:
        """The JSON-able description :func:`from_spec` rebuilds the task from."""

    def sample(self, n: int, seed: int = 0) -> Any:
        """``n`` fresh held-out samples from ``seed`` (the CFG's ``CFGSamples``, iGSM's ``SampleBatch``)."""


@runtime_checkable
class CFGAnalysisTask(AnalysableTask, Protocol):
    """What the Part 1 analyses (generation, nt_probe, attention_boundary, robustness) use of a CFG task."""

    grammar: Any
    observed: Any  # the grammar over observed tokens
    corrupt_frac: float
    flip_rate: float

    def accepts(self, tokens: Any) -> Any:
        """Whether each row of token ids holds a string of the language (exact membership)."""

    def decode_rows(self, tokens: Any) -> list:
        """Each row's terminal string (``None`` where the row is not ``BOS x EOS``)."""

    def true_next_token_logprobs(self, samples: Any) -> Any:
        """The exact next-token log-probabilities along each sample."""


@runtime_checkable
class IGSMAnalysisTask(AnalysableTask, Protocol):
    """What the Part 2 analyses use of an iGSM task."""

    config: Any  # the generator's IGSMConfig (op_max, letters, ...)
    preset: str
    retry: Any
    n_ctx: int

    def eval_sets(self, n: int = 256, seed: int = 1234) -> dict[str, list]:
        """The held-out problem sets by name (in-distribution, reask, each OOD op)."""

    def ood_ops(self) -> tuple[int, ...]:
        """The out-of-distribution ops (above the training range) the analyses evaluate."""


def missing_members(task: Any, protocol: type) -> list[str]:
    """The members of ``protocol`` that ``task`` lacks (an empty list when it meets the contract)."""
    names = set()
    for klass in protocol.__mro__:
        if klass in (Protocol, object) or not getattr(klass, "_is_protocol", False):
            continue
        names |= set(getattr(klass, "__annotations__", {})) | {n for n, v in vars(klass).items()
                                                                if callable(v) or isinstance(v, property)}
    names = {n for n in names if not n.startswith("_")}
    return sorted(n for n in names if not hasattr(task, n))


_REGISTRY: dict[str, Callable[[dict[str, Any]], Task]] = {}
#: the entry-point group through which an installed distribution adds task kinds (value: a module or a class)
ENTRY_POINT_GROUP = "plm_interp.tasks"


def register_task(kind: "str | type", factory: Callable[[dict[str, Any]], Task] | None = None):
    """Make ``from_spec({"kind": kind, ...})`` build tasks with ``factory``.

    Also a class decorator: ``@register_task`` on a :class:`Task` subclass registers ``cls.from_spec`` under
    ``cls.kind`` and returns the class.
    """
    if isinstance(kind, type):
        cls = kind
        _REGISTRY[cls.kind] = cls.from_spec
        return cls
    if factory is None:
        raise TypeError(f"register_task({kind!r}) needs a factory (or use @register_task on the class)")
    _REGISTRY[kind] = factory
    return factory


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


_LOADED = False


def _load_builtin() -> None:
    """Import every subpackage of ``tasks`` (each registers its kind) and the ``plm_interp.tasks`` entry points.

    Lazily, so that ``import tasks`` stays cheap; once per process.
    """
    global _LOADED
    if _LOADED:
        return
    import importlib
    import importlib.metadata
    import pkgutil
    from pathlib import Path

    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):  # the subpackages of tasks/
        if info.ispkg and not info.name.startswith("_"):
            importlib.import_module(f"tasks.{info.name}")
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        if isinstance(obj, type) and issubclass(obj, Task):
            register_task(obj)
    _LOADED = True
