"""What a spec becomes at each ``--scale``: the ``plm-interp train`` command line of a run and the options of an
analysis, and the run directory they use.

``cpu`` and ``paper`` take the spec as written (the paper scale from its recipe); ``tiny`` shrinks every run to one
layer and 2 steps and every analysis to a handful of examples, so the fast tests run each spec end to end in
seconds. Kept apart from the runner so that what a scale changes can be read (and tested) without the scheduling.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from plm_app.experiments.spec import RECIPES, Analysis, Shipped, Source, Train

#: ``tiny`` scale: 1 layer x 2 heads x 16 wide, 2 steps of 2 sequences (checks a spec end to end in seconds)
TINY_MODEL = {"model.n_layers": 1, "model.n_heads": 2, "model.d_model": 16}
TINY_TRAIN = {"train.max_steps": 2, "train.batch_size": 2, "train.warmup_steps": 0, "train.ckpt_every": 0,
              "train.log_every": 1}
_SHAPE = {"model.n_layers", "model.n_heads", "model.d_model", "model.d_head", "model.d_mlp", "model.rotary_dim"}
_BUDGET = {"train.max_steps", "train.max_tokens", "train.batch_size", "train.micro_batch_size", "train.warmup_steps",
           "train.ckpt_every", "train.log_every"}
#: ``tiny`` scale analysis options, over the cpu ones: the fewest examples and steps that still run every path
TINY_OPTIONS = {
    "generation": {"n": 2, "kl_strings": 2, "batch_size": 2},
    "nt_probe": {"n_train": 4, "n_test": 2, "fit": {"max_iter": 2, "width": 8, "n_heads": 2}},
    "robustness": {"n": 2, "prefix_len": 4, "max_new_tokens": 8, "batch_size": 2},
    "v_probe": {"n_train": 4, "n_test": 2, "per_problem": 1, "fit": {"max_steps": 2, "batch_size": 4, "head_iter": 2}},
    "regret_probe": {"n_train": 4, "n_test": 2, "per_problem": 1, "n_gen": 1, "max_new_tokens": 8,
                     "fit": {"max_steps": 2, "batch_size": 4, "head_iter": 2}},
    "reasoning_level": {"n": 4, "max_new_tokens": 8},  # the eval set spreads ops: 4 problems hold op 1, 2 and 3
    "retry_eval": {"n": 2, "max_new_tokens": 8},
}


def toml_value(v: Any, group_digits: bool = False) -> str:
    """A value as TOML writes it inline (what ``--set`` reads): strings quoted, lists and tables inline.
    ``group_digits`` writes integers of 10,000 and more as ``4_900_000``, for recipe files people read."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, int) and group_digits and abs(v) >= 10_000:
        return f"{v:_}"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x, group_digits) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {toml_value(x, group_digits)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {v!r} as a TOML value")


def run_dir(runs_dir: Path, name: str, seed: int) -> Path:
    return Path(runs_dir) / f"{name}-s{seed}"


def model_dir(runs_dir: Path, src: Source, seed: int) -> Path:
    """Where a source's analyses go (and, for a training run, its model: ``final/``)."""
    return run_dir(runs_dir, src.name, seed)


def model_ref(runs_dir: Path, src: Source, seed: int) -> str:
    return src.name if isinstance(src, Shipped) else str(model_dir(runs_dir, src, seed) / "final")


def train_sets(run: Train, scale: str) -> dict[str, Any]:
    """The run's ``--set`` overrides at ``scale`` (tiny: the cpu run, shrunk and cut to 2 steps)."""
    sets = dict(run.sets)
    if scale == "tiny":
        sets = {k: v for k, v in sets.items() if k not in _SHAPE | _BUDGET}
        if run.after is None:  # a run that starts from a model takes that model's architecture
            sets.update(TINY_MODEL)
        sets.update(TINY_TRAIN)
    if scale in ("tiny", "cpu"):
        sets["train.progress"] = False
    return sets


def _recipe_path(recipe: str) -> str:
    path = RECIPES / recipe
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def train_argv(run: Train, scale: str, seed: int, runs_dir: Path) -> list[str]:
    """The ``plm-interp train`` command line of ``run`` (without the program name)."""
    argv = ["train", run.kind]
    if run.preset:
        argv += ["--preset", run.preset]
    if run.recipe:
        argv += ["--config", _recipe_path(run.recipe)]
    for key, value in train_sets(run, scale).items():
        argv += ["--set", f"{key}={toml_value(value)}"]
    if run.after is not None:
        argv += ["--set", f"train.init_from={model_ref(runs_dir, run.after, seed)}"]
    return argv + ["--set", f"train.seed={seed}", "--run-dir", str(run_dir(runs_dir, run.name, seed)), "--resume"]


def analysis_options(a: Analysis, scale: str, seed: int) -> dict[str, Any]:
    """The analysis's options at ``scale`` for the experiment's ``seed``: seed 0 keeps the analysis's default seed,
    seed s > 0 passes ``seed = s`` (to every arm alike, shipped or trained).

    Why the analysis follows the experiment's seed: the analysis seed draws the evaluation problems or probe
    strings and initialises the random-init control, so a control measured at one seed only would print a spread
    of zero over "n = 2" seeds, and the seed spread would leave out the evaluation sample. Within a seed every arm
    gets the same seed, so the arms are scored on the same problems (like with like)."""
    import analyses

    params = inspect.signature(analyses.get(a.name)).parameters
    opts = a.options(scale)
    if scale == "tiny":
        opts.update({k: v for k, v in TINY_OPTIONS.get(a.name, {}).items() if k in params})
    if "progress" in params:
        opts["progress"] = False
    if "seed" in params and seed != 0:  # seed 0: the analysis's default
        opts["seed"] = seed
    return opts
