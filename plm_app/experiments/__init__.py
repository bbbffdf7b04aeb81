"""The papers' comparisons as runnable experiments (``plm-interp experiment NAME --scale cpu|paper``).

Each experiment (:class:`~plm_app.experiments.spec.Experiment`) is declarative: arms (models compared,
trained by ``plm-interp train`` commands or shipped), the analyses to run on each, and the metrics of its table
with the paper's figures beside ours. :mod:`.runner` runs what is not done yet (resumable across sittings),
:mod:`.table` rebuilds the table from the run directories. docs/part1_experiments.md and
docs/part2_experiments.md hold the tables and commands.

    >>> from plm_app.experiments import EXPERIMENTS
    >>> sorted(EXPERIMENTS)[:2]
    ['part1_corrupted', 'part1_schemes']
"""
from __future__ import annotations

from plm_app.experiments.part1 import part1_corrupted, part1_schemes
from plm_app.experiments.part2 import (part2_1_depth_width, part2_1_emergence, part2_1_vprobes, part2_2_lora_vs_full,
                                              part2_2_retry_pretrain, part2_2_retry_weak)
from plm_app.experiments.spec import SCALES, Analysis, Arm, Experiment, Metric, Shipped, Train

#: every experiment, by name, in the order of the papers
EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    part1_schemes, part1_corrupted, part2_1_vprobes, part2_1_depth_width, part2_1_emergence, part2_2_lora_vs_full,
    part2_2_retry_pretrain, part2_2_retry_weak)}


def get(name: str) -> Experiment:
    """The experiment ``name``; a ValueError lists the known ones otherwise."""
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment {name!r} is not defined; known: {list(EXPERIMENTS)}")
    return EXPERIMENTS[name]


__all__ = ["EXPERIMENTS", "SCALES", "Analysis", "Arm", "Experiment", "Metric", "Shipped", "Train", "get"]
