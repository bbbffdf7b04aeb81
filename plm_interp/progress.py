"""One progress bar per analysis call: the stage it is in (activations, trained probes, control) and an ETA.

Why one bar and not one per loop: a notebook user wants to know how long the *call* will take. Each stage
declares its share of the work up front (``Stages({"activations": 2, "trained probes": 8, ...})``); the bar's
total is their sum, so tqdm's ETA covers the whole call, and the description names the stage now running.
"""
from __future__ import annotations

from tqdm.auto import tqdm


class Stages:
    """A single tqdm bar over named stages; ``progress=False`` makes every method a no-op."""

    def __init__(self, desc: str, stages: dict[str, float], progress: bool = True):
        self.desc, self.stages = desc, dict(stages)
        self.bar = tqdm(total=float(sum(self.stages.values())), desc=desc, disable=not progress, leave=False,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")
        self.current: str | None = None

    def stage(self, name: str) -> "Stages":
        """Enter stage ``name`` (one of the declared ones)."""
        if name not in self.stages:
            raise KeyError(f"stage {name!r} was not declared; declared: {list(self.stages)}")
        self.current = name
        self.bar.set_description_str(f"{self.desc} [{name}]")
        return self

    def advance(self, units: float = 1.0) -> None:
        self.bar.update(units)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> "Stages":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
