"""Measure a GPU for the paper-scale recipes in a few minutes, through the real training code.

The recipes' GPU-hours (``bench/recipe_cost.py``, ``recipes/README.md``) rest on a model-FLOPs utilisation
(MFU). Without a GPU that number is assumed; this check measures it, with everything else a researcher needs
to know before renting many GPU-hours: which bf16/SDPA kernels run, what caching every hook costs, whether
data generation starves the GPU, and whether NCCL DDP works. Every throughput figure comes from
:class:`~plm_interp.training.Trainer` (bf16 autocast, fused AdamW, grad clipping, DataLoader) on the
shapes the recipes use, timed between two synchronised points after a warm-up.

    python -m plm_app.gpu_check                 # a GPU machine: <= 8 min, writes bench/gpu_check.json
    python -m plm_app.gpu_check --dry-run       # anywhere: every stage on CPU at a tiny shape (seconds)

MFU uses PaLM's model FLOPs per token, ``6 N + 12 n_layers n_ctx d_model`` (the count ``bench/recipe_cost.py``
uses), over the device's dense bf16 peak from :data:`PEAK_BF16_TFLOPS` (``--peak-tflops`` for others).
Stages run in priority order; one that fails records its error and the rest still run, and once the time
budget is spent the remaining stages are recorded as skipped.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

SCHEMA = 1
#: dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, by a substring of torch.cuda.get_device_name()
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "GH200": 989.0, "A100": 312.0, "A10G": 125.0, "L40S": 362.0,
                    "L4": 121.0, "RTX 4090": 165.0, "B200": 2250.0}
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.json"


@dataclass(frozen=True)
class Shape:
    """A model size and a micro-batch: ``preset`` (plm_interp.PRESETS) at ``n_ctx`` with ``batch`` sequences."""
    name: str
    preset: str
    n_ctx: int
    batch: int
    d_vocab: int = 512


GPU_SHAPES = {"gpt2-small": Shape("gpt2-small", "gpt2-small", 512, 32), "small": Shape("small", "small", 512, 64)}
#: the dry run: the same stages at a size the CPU does in seconds
DRY_SHAPES = {"gpt2-small": Shape("gpt2-small (dry-run: tiny)", "tiny", 32, 4, 64),
              "small": Shape("small (dry-run: tiny)", "tiny", 32, 4, 64)}


def flops_per_token(n_params: int, n_layers: int, n_ctx: int, d_model: int) -> int:
    """PaLM's model FLOPs per trained token: 6 per parameter plus the attention's ``QK^T`` and ``AV``."""
    return 6 * n_params + 12 * n_layers * n_ctx * d_model


def peak_tflops(device_name: str, override: float | None = None) -> float | None:
    """The bf16 peak of ``device_name`` (``None`` if unknown, e.g. a CPU)."""
    if override:
        return override
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in device_name), None)


# -- environment ---------------------------------------------------------------------------------------------

def environment(device: torch.device) -> dict[str, Any]:
    """Device, versions, and whether bf16 autocast really computes in bf16 there."""
    info = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({_cpu_name()})",
            "device_count": torch.cuda.device_count() if device.type == "cuda" else 1,
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
            "python": platform.python_version(), "cpu_count": os.cpu_count()}
    a = torch.randn(16, 16, device=device)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        info["bf16_autocast_dtype"] = str((a @ a).dtype)
    info["bf16_supported"] = (torch.cuda.is_bf16_supported() if device.type == "cuda"
                              else info["bf16_autocast_dtype"] == "torch.bfloat16")
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sdpa_backends(device: torch.device, n_heads: int, d_head: int, n_ctx: int) -> dict[str, Any]:
    """Which ``scaled_dot_product_attention`` kernels accept the model's causal bf16 attention, and which one
    PyTorch picks (the first accepted in its priority order)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(2, n_heads, n_ctx, d_head, device=device, dtype=torch.bfloat16)
    accepted = {}
    for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                    SDPBackend.MATH):
        try:
            with sdpa_kernel([backend]):
                torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True)
            accepted[backend.name] = True
        except RuntimeError:
            accepted[backend.name] = False
    order = [b.name for b in _sdpa_priority()] or list(accepted)
    return {"accepted": accepted, "priority": order, "in_use": next((n for n in order if accepted.get(n)), None)}


def _sdpa_priority() -> list:
    from torch.nn.attention import SDPBackend

    try:
        return [SDPBackend(int(b)) for b in torch._C._get_sdp_priority_order()]
    except (AttributeError, TypeError, ValueError):
        return []


# -- throughput through the Trainer --------------------------------------------------------------------------

class RandomTokens:
    """A batch source of uniform random tokens: no generation cost, so it measures the model alone."""

    def __init__(self, d_vocab: int, n_ctx: int):
        self.d_vocab, self.n_ctx = d_vocab, n_ctx

    def __call__(self, batch_size: int, seed: int, start: int = 0):
        g = torch.Generator().manual_seed(seed)
        while True:
            yield torch.randint(0, self.d_vocab, (batch_size, self.n_ctx), generator=g)


class _Clock:
    """Times the steps after the warm-up with two device syncs only: one when the first timed step's loss is
    computed (wrapping the loss function), one in an eval callback after the last step."""

    def __init__(self, device: torch.device, loss_fn: Callable, warmup: int):
        self.device, self.loss_fn, self.warmup = device, loss_fn, warmup
        self.calls, self.start, self.end = 0, None, None

    def _sync(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def loss(self, model, batch):
        self.calls += 1
        if self.calls == self.warmup + 1:
            self.start = self._sync()
        return self.loss_fn(model, batch)

    def __call__(self, model, step: int) -> None:
        self.end = self._sync()


def trainer_rate(model, source, device: torch.device, batch: int, warmup: int, steps: int, *,
                 loss_fn: Callable | None = None, compile: bool | str = False, num_workers: int = 0,
                 dist_info=None) -> float:
    """Training tokens/s (all ranks) of ``steps`` Trainer steps after ``warmup`` steps, bf16 autocast."""
    from plm_interp.training import TrainConfig, Trainer, lm_loss_fn
    from plm_interp.training import distributed as D

    info = dist_info or D.DistInfo()
    cfg = TrainConfig(batch_size=batch * info.world_size, micro_batch_size=batch, max_steps=warmup + steps,
                      eval_every=0, log_every=warmup + steps, precision="bf16", compile=compile,
                      device=str(device), num_workers=num_workers, progress=False, lr=1e-4)
    clock = _Clock(device, loss_fn or lm_loss_fn, warmup)
    trainer = Trainer(model, source, cfg, None, callbacks=[clock], loss_fn=clock.loss, dist_info=info)
    trainer.fit(resume=False)
    ADAMW_SEEN.add("fused" if trainer.optimizer.defaults.get("fused") else
                   "foreach" if trainer.optimizer.defaults.get("foreach") else "default (for-loop on CPU)")
    if not info.is_main:
        return float("nan")
    return steps * batch * info.world_size * source.n_ctx / (clock.end - clock.start)


#: the AdamW implementations the measured Trainers used (the report's "adamw")
ADAMW_SEEN: set[str] = set()


def cached_loss(model, batch):
    """The LM loss computed through ``run_with_cache``: every hook point stores its activation."""
    loss, _cache = model.run_with_cache(batch["tokens"], return_type="loss")
    return loss


def hf_gpt2(shape: Shape, cfg):
    """transformers' GPT2LMHeadModel (SDPA attention) at the same width, depth, heads, context and vocab."""
    import transformers

    config = transformers.GPT2Config(n_embd=cfg.d_model, n_layer=cfg.n_layers, n_head=cfg.n_heads,
                                     vocab_size=shape.d_vocab, n_positions=shape.n_ctx, attn_implementation="sdpa")
    return transformers.GPT2LMHeadModel(config)


def hf_loss(model, batch):
    return model(input_ids=batch["tokens"], labels=batch["tokens"]).loss


def plm(shape: Shape, positional: str = "rot", device: torch.device | None = None):
    from plm_interp import HookedPLM, preset_config

    torch.manual_seed(0)
    return HookedPLM(preset_config(shape.preset, d_vocab=shape.d_vocab, n_ctx=shape.n_ctx, positional=positional,
                                   seed=0))


def throughput_row(name: str, shape: Shape, model, rate: float, peak: float | None, **extra) -> dict[str, Any]:
    n_params = sum(p.numel() for p in model.parameters())
    cfg = getattr(model, "cfg", None)
    n_layers = getattr(cfg, "n_layers", None) or model.config.n_layer
    d_model = getattr(cfg, "d_model", None) or model.config.n_embd
    fpt = flops_per_token(n_params, n_layers, shape.n_ctx, d_model)
    return {"name": name, "shape": asdict(shape), "params": n_params, "flops_per_token": fpt,
            "tokens_per_s": round(rate, 1), "model_tflops": round(rate * fpt / 1e12, 3),
            "mfu": round(rate * fpt / (peak * 1e12), 4) if peak else None, **extra}


# -- DDP ----------------------------------------------------------------------------------------------------

def _ddp_worker(rank: int, world: int, port: int, shape: Shape, device_type: str, warmup: int, steps: int,
                out: str) -> None:
    import torch.distributed as dist

    from plm_interp.training import distributed as D

    torch.set_num_threads(1)
    if device_type == "cuda":
        torch.cuda.set_device(rank)
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo", init_method=f"tcp://127.0.0.1:{port}",
                            rank=rank, world_size=world)
    try:
        device = torch.device(f"cuda:{rank}" if device_type == "cuda" else "cpu")
        model = plm(shape)
        rate = trainer_rate(model, RandomTokens(shape.d_vocab, shape.n_ctx), device, shape.batch, warmup, steps,
                            dist_info=D.DistInfo(rank, world, rank))
        if rank == 0:
            Path(out).write_text(json.dumps({"tokens_per_s": rate, "backend": dist.get_backend()}))
    finally:
        dist.destroy_process_group()


def ddp_rate(shape: Shape, device_type: str, warmup: int, steps: int, world: int = 2) -> dict[str, Any]:
    """Spawn ``world`` processes (NCCL on GPUs, gloo on CPU) that train ``shape`` together; tokens/s overall."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rank0.json")
        # CUDA cannot be forked once initialised; on CPU fork skips re-importing torch in each child.
        ctx = mp.get_context("spawn" if device_type == "cuda" else "fork")
        procs = [ctx.Process(target=_ddp_worker, args=(r, world, port, shape, device_type, warmup, steps, out))
                 for r in range(world)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        codes = [p.exitcode for p in procs]
        if any(codes) or not os.path.exists(out):
            raise RuntimeError(f"DDP workers exited with codes {codes}")
        return {"world_size": world, **json.loads(Path(out).read_text())}


# -- the check ----------------------------------------------------------------------------------------------

def run_check(dry_run: bool = False, budget_s: float = 450.0, steps: int | None = None, workers: int | None = None,
              compile: bool = True, peak: float | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage (see the module docstring) and return the report as a dict (what ``--out`` holds)."""
    if not dry_run and not torch.cuda.is_available():
        raise RuntimeError("no CUDA device: this check measures a GPU (use --dry-run to rehearse it on CPU)")
    device = torch.device("cpu" if dry_run else "cuda:0")
    shapes = DRY_SHAPES if dry_run else GPU_SHAPES
    warmup, timed = (1, steps or 2) if dry_run else (5, steps or 30)
    workers = workers if workers is not None else (1 if dry_run else max(1, min(8, (os.cpu_count() or 2) - 1)))
    start = time.perf_counter()
    ADAMW_SEEN.clear()
    env = environment(device)
    peak = peak_tflops(env["device"], peak)
    report: dict[str, Any] = {"schema": SCHEMA, "dry_run": dry_run, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                              time.gmtime()), "environment": env, "peak_bf16_tflops": peak,
                              "precision": "bf16 autocast", "warmup_steps": warmup, "timed_steps": timed,
                              "throughput": [], "stages": {}}
    g2 = shapes["gpt2-small"]

    def stage(name: str, fn: Callable[[], Any]) -> Any:
        if time.perf_counter() - start > budget_s:
            report["stages"][name] = "skipped: time budget spent"
            log(f"[gpu-check] {name}: skipped (budget {budget_s:.0f} s spent)")
            return None
        t0 = time.perf_counter()
        try:
            result = fn()
            report["stages"][name] = f"ok in {time.perf_counter() - t0:.1f} s"
            log(f"[gpu-check] {name}: ok ({time.perf_counter() - t0:.1f} s)")
            return result
        except Exception as exc:  # noqa: BLE001 - one broken stage must not hide the others' figures
            report["stages"][name] = f"error: {type(exc).__name__}: {exc}"[:500]
            log(f"[gpu-check] {name}: {report['stages'][name]}")
            if device.type == "cuda":
                torch.cuda.empty_cache()
            return None

    def measure(name: str, shape: Shape, model, **kw) -> dict | None:
        def go():
            rate = trainer_rate(model, RandomTokens(shape.d_vocab, shape.n_ctx), device, shape.batch, warmup, timed,
                                **kw)
            row = throughput_row(name, shape, model, rate, peak,
                                 compile={True: "inductor"}.get(kw.get("compile", False), kw.get("compile", False)),
                                 hooks="run_with_cache" if kw.get("loss_fn") is cached_loss else "idle")
            report["throughput"].append(row)
            return row
        return stage(name, go)

    cfg = plm(g2).cfg
    report["sdpa"] = stage("sdpa backends", lambda: sdpa_backends(device, cfg.n_heads, cfg.d_head, g2.n_ctx))
    rot = measure("gpt2-small rot", g2, plm(g2, "rot"))
    abs_ = measure("gpt2-small abs", g2, plm(g2, "abs"))
    hf = measure("transformers GPT-2 (sdpa)", g2, hf_gpt2(g2, cfg), loss_fn=hf_loss)
    measure("gpt2-small rot + run_with_cache", g2, plm(g2, "rot"), loss_fn=cached_loss)
    for positional in ("rot",):
        measure(f"small {positional}", shapes["small"], plm(shapes["small"], positional))
        measure(f"small {positional} + run_with_cache", shapes["small"], plm(shapes["small"], positional),
                loss_fn=cached_loss)
    report["dataloader"] = stage("dataloader starvation", lambda: starvation(device, dry_run, warmup, timed, workers))
    n_gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    if n_gpus >= 2 or dry_run:
        report["ddp"] = stage("ddp 2 processes", lambda: {**ddp_rate(g2, device.type, warmup, timed),
                                                          "single_process_tokens_per_s": rot and rot["tokens_per_s"]})
    else:
        report["ddp"] = None
        report["stages"]["ddp 2 processes"] = f"not run: {n_gpus} GPU(s)"
    # On CPU, inductor's C++ codegen takes minutes even at the tiny shape; the dry run traces the same path
    # (dynamo + AOT autograd through the Trainer) without generating kernels.
    backend = "aot_eager" if dry_run else True
    rot_c = measure("gpt2-small rot compiled", g2, plm(g2, "rot"), compile=backend) if compile else None
    if hf and abs_:
        report["hooks_idle_vs_transformers_gpt2"] = round(abs_["tokens_per_s"] / hf["tokens_per_s"], 4)
    best = max((r for r in (rot, rot_c) if r and r["mfu"] is not None), key=lambda r: r["mfu"], default=None)
    report["cost_table_mfu"] = None if dry_run or best is None else {"mfu": best["mfu"], "from": best["name"],
                                                                      "device": env["device"], "peak_bf16_tflops": peak}
    ratio = report.get("hooks_idle_vs_transformers_gpt2")
    report["targets"] = {  # None: not measured (a CPU dry run judges nothing)
        "gpt2_small_bf16_mfu>=0.40": None if dry_run or best is None else best["mfu"] >= 0.40,
        "hooks_idle_within_5pct_of_gpt2": None if dry_run or ratio is None else ratio >= 0.95}
    report["adamw"] = sorted(ADAMW_SEEN)
    report["elapsed_s"] = round(time.perf_counter() - start, 1)
    return report


def starvation(device: torch.device, dry_run: bool, warmup: int, timed: int, workers: int) -> dict[str, Any]:
    """The ``small`` model on iGSM data (the slowest generator) with 0 and ``workers`` DataLoader workers,
    beside the same model on free random tokens: below ~90% of the latter, the GPU waits for data."""
    from tasks.igsm import IGSMTask

    from plm_interp import HookedPLM, preset_config
    from plm_interp.training import TaskSource

    task = IGSMTask("small" if dry_run else "med")
    n_ctx, preset, batch = (task.n_ctx, "tiny", 2) if dry_run else (task.n_ctx, "small", 64)

    def model():
        return HookedPLM(preset_config(preset, d_vocab=task.d_vocab, n_ctx=n_ctx, positional="rot", seed=0))
    source = TaskSource(task, n_ctx)
    free = trainer_rate(model(), RandomTokens(task.d_vocab, n_ctx), device, batch, warmup, timed)
    zero = trainer_rate(model(), source, device, batch, warmup, timed, num_workers=0)
    many = trainer_rate(model(), source, device, batch, warmup, timed, num_workers=workers)
    return {"task": f"igsm {task.preset} (n_ctx {n_ctx})", "model": preset, "batch": batch,
            "random_tokens_per_s": round(free, 1), "workers_0_tokens_per_s": round(zero, 1),
            f"workers_{workers}_tokens_per_s": round(many, 1), "workers": workers,
            "starved_at_0": zero < 0.9 * free, f"starved_at_{workers}": many < 0.9 * free}


def add_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The check's options (shared by ``python -m plm_app.gpu_check`` and ``plm-interp gpu-check``)."""
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes, 2 steps: rehearse every stage")
    p.add_argument("--out", type=Path, default=None, help=f"JSON report (default {DEFAULT_OUT}; dry run: stdout)")
    p.add_argument("--budget-s", type=float, default=450.0, help="stop starting stages after this many seconds")
    p.add_argument("--steps", type=int, default=None, help="timed steps per measurement (30 on GPU)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers for the starvation stage")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile stage")
    p.add_argument("--peak-tflops", type=float, default=None, help="bf16 peak of a GPU not in the table")
    return p


def run(args: argparse.Namespace) -> int:
    """Run the check as ``args`` say, write the JSON, print a summary on stderr."""
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    report = run_check(args.dry_run, args.budget_s, args.steps, args.workers, not args.no_compile,
                       args.peak_tflops, log)
    text = json.dumps(report, indent=2) + "\n"
    out = args.out or (None if args.dry_run else DEFAULT_OUT)
    if out is None:
        print(text)
    else:
        from plm_interp.io import atomic_write_bytes

        atomic_write_bytes(out, text.encode())
        log(f"[gpu-check] wrote {out}")
    for row in report["throughput"]:
        mfu = f"{row['mfu']:.1%}" if row["mfu"] is not None else "n/a"
        log(f"[gpu-check] {row['name']:36s} {row['tokens_per_s']:>14,.0f} tokens/s  MFU {mfu}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu_check", description=__doc__.split("\n\n")[0])
    return run(add_arguments(p).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
