"""Synthetic tasks with exact ground truth: context-free grammars (``tasks.cfg``) and iGSM (``tasks.igsm``).

Every task implements :class:`tasks.base.Task`; a model trained through a task records ``task.spec()`` in its
config, so :func:`tasks.from_spec` rebuilds the task from a checkpoint with nothing else.
"""
from tasks.base import AnalysableTask, Batch, CFGAnalysisTask, IGSMAnalysisTask, Task, from_spec, register_task, \
    task_names

__all__ = ["AnalysableTask", "Batch", "CFGAnalysisTask", "IGSMAnalysisTask", "Task", "from_spec", "register_task",
           "task_names"]
