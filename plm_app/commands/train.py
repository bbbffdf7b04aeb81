"""``plm-interp train TASK [--preset NAME] [--config FILE] [--set section.key=value ...] [--run-dir DIR] [--resume]``

Validates the whole configuration first (nothing is generated or written before that), saves the resolved
config as ``RUN_DIR/config.json``, trains, and writes the final model to ``RUN_DIR/final/`` with its task
recorded in ``cfg.task``. Under ``torchrun`` every rank runs this same command. See docs/training.md.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

from plm_app import runconfig
from plm_interp.config import ConfigError
from plm_interp.training.config import RUNTIME_KEYS  # keys that may differ on --resume (shared with the trainer)

CONFIG_NAME = "config.json"


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model on a task (fresh data, checkpoints, resume, DDP)",
                       description=__doc__.split("\n\n")[1])
    p.add_argument("task", help="task kind, e.g. cfg or igsm")
    p.add_argument("--preset", help="start from the task's training preset (task.presets(), e.g. small)")
    p.add_argument("--config", help="TOML file with [task], [model], [train] sections (or a saved config.json)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one value, e.g. --set train.lr=1e-3 --set model.preset=small")
    p.add_argument("--run-dir", help="run directory (default: runs/TASK-YYYYmmdd-HHMMSS)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --run-dir from its newest valid checkpoint (or start it)")
    p.set_defaults(func=run)


def run(args) -> int:
    run_dir = _run_dir(args)
    saved = _check_run_dir(run_dir, args.resume)  # early, cheap refusals; repeated under the lock in _train
    # On resume the saved config is the base; what the command line gives must agree with it.
    cfg = resolve_args(args, saved)
    resolved = json.loads(json.dumps(cfg.to_dict()))  # as it will read back from config.json
    if saved is not None:
        _check_same(saved, resolved, run_dir / CONFIG_NAME)
    return _train(cfg, resolved, run_dir, args.resume, saved)


def _check_run_dir(run_dir: Path, resume: bool) -> dict | None:
    """The saved config of ``run_dir`` (None for a fresh run), or :class:`ConfigError` when this command may not
    write there. Run twice: before any work (a quick refusal) and again holding the run-dir lock, because
    another ``train`` may have created the run in between; only the second answer decides."""
    saved_path = run_dir / CONFIG_NAME
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir} is a file, not a directory; choose another --run-dir")
    saved = runconfig.load_file(saved_path) if saved_path.is_file() else None
    if saved is not None and not resume:
        raise ConfigError(f"{run_dir} already holds a run; pass --resume to continue it, or another --run-dir")
    if saved is None and run_dir.is_dir() and any(p.name != ".lock" for p in run_dir.iterdir()) and not resume:
        raise ConfigError(f"--run-dir {run_dir} exists and is not empty; choose another --run-dir")
    for name in ("checkpoints", "final"):  # found only at the first save otherwise, after the training
        if (run_dir / name).exists() and not (run_dir / name).is_dir():
            raise ConfigError(f"{run_dir / name} is a file, but the run writes a directory there; move the file "
                              "away or choose another --run-dir")
    return saved


def _lock_run_dir(run_dir: Path):
    """Take ``run_dir``'s lock, turning an unwritable place into a message naming it."""
    from plm_interp.training import lock

    try:
        return lock.acquire(run_dir)
    except lock.RunDirLocked:
        raise
    except OSError as exc:  # read-only file system, no permission, a path component that is a file
        raise ConfigError(f"--run-dir {run_dir}: cannot create or lock it ({exc.strerror or exc}); choose a "
                          "writable --run-dir") from None


def resolve_args(args, saved: dict | None = None) -> runconfig.RunConfig:
    """The run config the ``train`` arguments describe (``task``, ``--config``, ``--preset``, ``--set``), layered
    over a saved config; the task is built once. Also used by the experiment runner to read a run's budget."""
    file_layer, set_layer = _command_layers(args)
    task = runconfig.build_task(args.task, runconfig.merge(saved or {}, file_layer, set_layer)["task"])
    preset_layer = _preset_layer(task, args.preset)
    layers = runconfig.merge(saved or {}, preset_layer, file_layer, set_layer)
    return runconfig.resolve(args.task, layers, task=task if not preset_layer["task"] else None)


def _train(cfg: runconfig.RunConfig, resolved: dict, run_dir: Path, resume: bool, saved: dict | None = None) -> int:
    from plm_interp.checkpoint import save_model
    from plm_interp.io import atomic_write_json
    from plm_interp.model import HookedPLM
    from plm_interp.training import distributed, lock
    from plm_interp.training.data import TaskSource
    from plm_interp.training.trainer import NonFiniteLossError, Trainer

    # Everything that can fail on the settings fails here, before config.json: the device, building the model,
    # the trainer, one batch of the task's data; so a corrected command is a fresh start, with or without --resume.
    cfg.train.validate()
    info = distributed.init_from_env(cfg.train.device)
    try:
        model = HookedPLM(cfg.model)
    except (RuntimeError, MemoryError) as exc:  # e.g. an embedding too large to allocate
        raise ConfigError(f"model: cannot build a model of this size (d_vocab = {cfg.model.d_vocab}, n_ctx = "
                          f"{cfg.model.n_ctx}, d_model = {cfg.model.d_model}): {exc}") from None
    if cfg.train.init_from is not None:  # a resumed run's checkpoint replaces these weights
        from plm_interp.training.init_from import initialise
        initialise(model, cfg.train.init_from)
    source = TaskSource(cfg.task, cfg.model.n_ctx, masked=cfg.model.attention_dir == "bidirectional")
    trainer = Trainer(model, source, cfg.train, run_dir, dist_info=info)
    _first_batch(source, trainer.micro, cfg.train.seed)
    # One writer per run directory: the lock is held from the run-dir check to the end (the trainer re-enters
    # it), so of two fresh trains started at once the second finds the first's config.json and is refused.
    held = _lock_run_dir(run_dir) if info.is_main else None
    try:
        if info.is_main and _check_run_dir(run_dir, resume) != saved:
            raise ConfigError(f"{run_dir / CONFIG_NAME} changed while this command prepared (another train "
                              "wrote it); run the command again")
        if info.is_main and resume and saved is None:
            _check_orphan_checkpoint(run_dir, trainer, model)
        if info.is_main:
            atomic_write_json(run_dir / CONFIG_NAME, resolved)
            n_params = sum(p.numel() for p in model.parameters())
            print(f"[train] {cfg.task.kind} → {run_dir}  ({n_params:,} parameters, {trainer.total_steps} steps of "
                  f"{cfg.train.batch_size}×{cfg.model.n_ctx} tokens, {info.world_size} process(es), "
                  f"{trainer.device})", file=sys.stderr)
        with _threads(trainer.device, info.is_main):
            try:
                result = trainer.fit(resume=resume)
            except NonFiniteLossError as exc:
                raise _diverged(exc, run_dir, cfg, info.is_main) from None
        if info.is_main:
            if cfg.train.lora is not None:  # adapters beside the run; final/ holds the merged, plain model
                from plm_interp.training import lora
                lora.save_adapters(model, run_dir / lora.ADAPTERS_FILE, lora.LoRAConfig.from_dict(cfg.train.lora))
                lora.remove_lora(model)
            save_model(model, run_dir / "final")
            print(f"[train] done: step {result.step}, loss {result.loss if result.loss is None else round(result.loss, 4)}"
                  f", final model in {run_dir / 'final'}", file=sys.stderr)
    finally:
        if held is not None:
            lock.release(held)
    distributed.barrier(info)
    distributed.shutdown(info)
    return 0


def _check_orphan_checkpoint(run_dir: Path, trainer, model) -> None:
    """``--resume`` on a run dir with checkpoints but no config.json (removed, or lost before the fix that
    writes it first): the settings come from this command, so check them against the checkpoint before
    config.json records them. Otherwise config.json would say one lr while the restored optimizer and schedule
    follow another, or the weights would not fit the model."""
    from plm_interp.checkpoint import CheckpointError as ModelFileError
    from plm_interp.checkpoint import check_state_dict
    from plm_interp.training import checkpointing as ckpt

    found = ckpt.load_latest(trainer.checkpoint_root, report=lambda message: None)
    if found is None:
        return
    state, directory = found
    try:
        trainer._check_same_training(state.get("train_config"), str(directory))
        check_state_dict(model, state["model"], directory / ckpt.STATE)
    except (ValueError, ModelFileError) as exc:
        raise ConfigError(f"--resume on {run_dir}, which has no {CONFIG_NAME}: {exc}. Give the settings the run "
                          "was trained with (its checkpoint's train_config), or choose another --run-dir") from None


def _diverged(exc, run_dir: Path, cfg: runconfig.RunConfig, is_main: bool):
    """The NonFiniteLossError to show, with advice that works from where the run directory now stands.

    A resumed run must train with its saved settings (``_check_same``), so "resume with a lower lr" is refused.
    With no checkpoint saved nothing is worth keeping: the run's files are removed, and the same command with a
    lower lr starts afresh in the same ``--run-dir``. With one, the run is kept for inspection and the lower lr
    goes to a new ``--run-dir``."""
    from plm_interp.training.trainer import NonFiniteLossError

    lower = f"--set train.lr={cfg.train.lr / 10:g}"
    if exc.last_good is None:
        if is_main:
            _forget_run(run_dir)
        advice = (f"Nothing was kept (no checkpoint had been saved, and {run_dir} was cleared): run the same "
                  f"command again with a lower learning rate, e.g. {lower} (train.lr was {cfg.train.lr:g}), or more "
                  "train.warmup_steps")
    else:
        advice = (f"{run_dir} is kept as it is (a resumed run must keep its settings, so --resume cannot lower "
                  f"the learning rate): run the command again with another --run-dir and a lower learning rate, "
                  f"e.g. {lower} (train.lr was {cfg.train.lr:g}), or more train.warmup_steps")
    message = str(exc).split(". Lower train.lr")[0]
    return NonFiniteLossError(f"{message}. {advice}; if that does not help, check the data and the model config "
                              "(e.g. rotary_base, dtype)", step=exc.step, last_good=exc.last_good)


def _forget_run(run_dir: Path) -> None:
    """Remove what a run that saved no checkpoint wrote (config.json, metrics, TensorBoard, incomplete
    checkpoints), so that the directory no longer holds a run; the lock file stays until it is released."""
    import shutil

    for name in (CONFIG_NAME, "metrics.jsonl"):
        with contextlib.suppress(FileNotFoundError):
            (run_dir / name).unlink()
    for name in ("tensorboard", "checkpoints"):
        shutil.rmtree(run_dir / name, ignore_errors=True)


@contextlib.contextmanager
def _threads(device, announce: bool):
    """On a CPU, train with torch threads from the free cores: one per core beside another busy job runs each
    step several times slower than one thread (docs/training.md)."""
    if device.type != "cpu":
        yield
        return
    from plm_interp.runtime import torch_threads

    with torch_threads() as cores:
        if announce:
            print(f"[train] {cores.reason}", file=sys.stderr)
        yield


def _first_batch(source, batch_size: int, seed: int) -> None:
    """Draw one batch of the task's stream, so that settings the task cannot produce data for (an iGSM op the
    structure cannot reach, too few letters) fail before the run directory is written. The stream is a pure
    function of its seed, so this changes nothing in the run."""
    try:
        next(iter(source(batch_size, seed, start=0)))
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"[task]: the task cannot produce a training batch with these settings: {exc}") from None


def _command_layers(args) -> tuple[dict, dict]:
    """The ``--config`` file and the ``--set`` items as config sections."""
    file_layer = runconfig.load_file(args.config) if args.config else runconfig.merge()
    set_layer: dict = runconfig.merge()
    for item in args.overrides:
        section, key, value = runconfig.parse_override(item)
        set_layer[section][key] = value
    return file_layer, set_layer


def _preset_layer(task, name: str | None) -> dict:
    """The task's training preset ``name`` (of the task as the file and overrides configure it, e.g. which
    grammar), or empty sections."""
    return runconfig.preset_layer(task, name) if name else runconfig.merge()


def _run_dir(args) -> Path:
    if args.run_dir:
        return Path(args.run_dir)
    if args.resume:
        raise ConfigError("--resume needs --run-dir (the run to continue)")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("under torchrun give --run-dir, so that every rank writes to the same run")
    return Path("runs") / f"{args.task}-{time.strftime('%Y%m%d-%H%M%S')}"


def _check_same(saved: dict, resolved: dict, path: Path) -> None:
    """Refuse a resume whose settings differ from the run's saved ones. The saved model section is first read back
    as a config (as the checkpoint is), so a config.json written before a scheme's settings became its own (it lists
    every scheme's settings) still matches the same model now written with its own scheme's settings only."""
    saved = {**saved, "model": _canonical_model(saved.get("model", {}))}
    diffs = [f"{s}.{k}: saved {saved[s].get(k)!r}, now {resolved[s].get(k)!r}"
             for s in resolved for k in sorted(set(resolved[s]) | set(saved[s]))
             if saved[s].get(k) != resolved[s].get(k) and not (s == "train" and k in RUNTIME_KEYS)]
    if diffs:
        raise ConfigError(f"--resume with settings that differ from {path}: {diffs}; a resumed run must "
                          f"train the same way (only train.{{{', '.join(sorted(RUNTIME_KEYS))}}} may change)")


def _canonical_model(model: dict) -> dict:
    """The model section as this version writes it (:meth:`PLMConfig.to_dict`); as saved if it does not load (the
    comparison then names the fields)."""
    from plm_interp.config import PLMConfig

    try:
        return json.loads(json.dumps(PLMConfig.from_dict(dict(model)).to_dict()))
    except Exception:  # noqa: BLE001 - an unreadable section is compared as it is, field by field
        return model
