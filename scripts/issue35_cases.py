"""Issue 35 before/after cases: ``python scripts/issue35_cases.py ROOT`` runs each adversarial case of issue 35
against the source tree ROOT (this checkout, or an older commit exported with ``git archive``) and prints one line
per case (refused / silent / unclear / lost) and a summary by the class the issue filed it under."""
import contextlib
import io
import json
import math
import os
import random
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = sys.argv[1]
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests", "training")]
os.chdir(tempfile.mkdtemp())
import torch  # noqa: E402
torch.set_num_threads(1)
import train_helpers  # noqa: E402,F401

from plm_app.cli import main  # noqa: E402

RESULTS = []
BASE = ["--set", "model.preset=tiny", "--set", "model.n_ctx=16", "--set", "train.max_steps=4",
        "--set", "train.batch_size=4", "--set", "train.progress=false", "--set", "train.ckpt_every=2"]
NAMED = (ValueError, TypeError, RuntimeError, FloatingPointError)


def report(cls, name, detail=""):
    RESULTS.append((cls, name))
    print(f"{cls:8s} {name}: {str(detail)[:150]!r}", flush=True)


def cli(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except BaseException as exc:  # noqa: BLE001
            return None, f"{type(exc).__name__}: {exc}"
    return code, err.getvalue()


def expect_refusal(name, fn, words=(), warn_ok=False):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = fn()
        except NAMED as exc:
            ok = all(w in str(exc) for w in words) and type(exc).__name__ not in ("RecursionError", "AssertionError")
            report("refused" if ok else "unclear", name, f"{type(exc).__name__}: {exc}")
            return
        except Exception as exc:  # noqa: BLE001
            report("unclear", name, f"{type(exc).__name__}: {exc}")
            return
    if warn_ok and any(all(w in str(c.message) for w in words) for c in caught):
        report("refused", name, f"warned: {caught[-1].message}")
        return
    report("silent", name, out)


def expect_cli_refusal(name, argv, words=()):
    code, err = cli(argv)
    if code == 2 and "Traceback" not in err and all(w in err for w in words):
        report("refused", name, err.strip().splitlines()[-1] if err.strip() else "")
    elif code == 0:
        report("silent", name, "exit 0")
    else:
        report("unclear", name, f"exit {code}: {err[-300:]}")


def case(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001
        report("unclear", fn.__name__, f"harness: {type(exc).__name__}: {exc}")
    return fn


# ------------------------------------------------------------------ lost / half-written

@case
def lost_two_fresh_trains():
    from plm_interp.training import lock
    run, other = Path("race"), Path("race_other")
    cli(["train", "count_test", *BASE, "--run-dir", str(other)])
    real = lock.acquire

    def racing(d, *a, **k):
        if not (run / "config.json").exists():
            run.mkdir(exist_ok=True)
            for f in ("config.json", "metrics.jsonl"):
                (run / f).write_bytes((other / f).read_bytes())
        return real(d, *a, **k)
    lock.acquire = racing
    try:
        code, err = cli(["train", "count_test", *BASE, "--set", "train.lr=0.002", "--run-dir", str(run)])
    finally:
        lock.acquire = real
    report("lost" if code == 0 else "refused", "lost_two_fresh_trains", err[-150:])


@case
def lost_result_json_before_plot():
    from analyses import result as rm
    import dataclasses
    import matplotlib
    matplotlib.use("Agg")

    @dataclasses.dataclass
    class T(rm.AnalysisResult):
        v: float = 1.0

        def rows(self):
            return [{"v": self.v}]

        def plot(self):
            raise OSError(28, "No space left on device")
    with contextlib.suppress(OSError):
        T().save("an")
    report("lost" if Path("an/result.json").exists() else "refused", "lost_result_json_before_plot")


@case
def lost_quickstart_bad_values():
    for flag, value in (("--lr", "nan"), ("--steps", "0"), ("--batch-size", "-1")):
        d = f"qs{flag}"
        cli(["quickstart", "--reference", "none", flag, value, "--run-dir", d])
        report("lost" if Path(d, "quickstart.json").exists() else "refused", f"lost_quickstart {flag} {value}")


@case
def lost_nan_advice():
    from plm_interp.training import trainer as tm
    real = tm.Trainer.__init__

    def init(self, *a, **k):
        k["loss_fn"] = lambda m, b: tm.lm_loss_fn(m, b) * float("nan")
        real(self, *a, **k)
    tm.Trainer.__init__ = init
    try:
        code, err = cli(["train", "count_test", *BASE, "--run-dir", "nan"])
    finally:
        tm.Trainer.__init__ = real
    report("unclear" if code is None or "Traceback" in err else "refused", "unclear_nonfinite_message", err[-150:])
    code2, err2 = cli(["train", "count_test", *BASE, "--set", "train.lr=3e-5", "--run-dir", "nan"])
    code3, err3 = cli(["train", "count_test", *BASE, "--set", "train.lr=3e-5", "--run-dir", "nan", "--resume"])
    report("refused" if code2 == 0 or code3 == 0 else "lost", "lost_nan_advised_rerun", (err2 + err3)[-200:])


# ------------------------------------------------------------------ silently wrong: iGSM

def _igsm():
    from tasks.igsm import PRESETS, generate
    return generate(PRESETS["med"], random.Random(0))


@case
def silent_igsm():
    from tasks.igsm import verify
    from tasks.igsm.tokenizer import Tokenizer
    p = _igsm()
    for seed in range(200):
        from tasks.igsm import PRESETS, generate
        q = generate(PRESETS["med"], random.Random(seed))
        sents = q.solution_sentences()
        hit = [t for t, s in enumerate(sents) if Tokenizer.words(s)[-4] == "so" and Tokenizer.words(s)[-2] == "="
               and Tokenizer.words(s)[-1].isdigit()]
        if hit:
            t = hit[0]
            ws = Tokenizer.words(sents[t])
            sents[t] = " ".join(ws[:-1] + [str((int(ws[-1]) + 5) % 23), "=", ws[-1]])
            rep = verify(q, ". ".join(sents) + f". <ANS> {q.answer} <EOS>")
            report("silent" if rep.correct else "refused", "silent_verify_so_y_3_eq_9", rep.message)
            break
    rep = verify(p, "Define X as [BACK]. " + p.solution_text + f" <ANS> {p.answer}")
    report("silent" if rep.correct else "refused", "silent_verify_back_unknown", rep.message)
    rep = verify(p, p.solution_text + f" <ANS> {p.answer} <ANS> 3")
    report("silent" if rep.correct else "refused", "silent_verify_two_answers", rep.message)
    expect_refusal("silent_verify_str_answer", lambda: verify(p, p.solution_text, answer=str(p.answer)).error_kind,
                   words=("answer",))


def _text(c):
    from tasks.igsm.reader import _lexicon
    hier, cats_of, _ = _lexicon()
    h = hier[0]
    x = sorted(n for n, cs in cats_of.items() if h[0] in cs and len(cs) == 1 and "'s" not in n)[0]
    y = sorted(n for n, cs in cats_of.items() if h[1] in cs and len(cs) == 1 and "'s" not in n)[0]
    return f"The number of each {x}'s {y} equals {c}. How many {y} does {x} have?"


@case
def silent_read():
    from tasks.igsm.reader import read
    expect_refusal("silent_read_1e30_constant", lambda: read(_text("1" + "0" * 30)).answer, words=("modulus",))
    expect_refusal("silent_read_non_ascii_digit", lambda: read(_text("\u0663")).answer, words=("sentence 1",))


@case
def unclear_read_long_chain():
    from tasks.igsm.reader import _lexicon, read
    hier, cats_of, _ = _lexicon()
    h = hier[0]
    xs = sorted(n for n, cs in cats_of.items() if h[0] in cs and len(cs) == 1 and "'s" not in n)
    ys = sorted(n for n, cs in cats_of.items() if h[1] in cs and len(cs) == 1 and "'s" not in n)
    pairs = [(x, y) for x in xs for y in ys][:1500]
    s = [f"The number of each {pairs[0][0]}'s {pairs[0][1]} equals 3."]
    s += [f"The number of each {b[0]}'s {b[1]} equals each {a[0]}'s {a[1]}." for a, b in zip(pairs, pairs[1:])]
    text = " ".join(s) + f" How many {pairs[-1][1]} does {pairs[-1][0]} have?"
    from tasks.igsm.reader import ReadError
    try:
        read(text)
        report("silent", "unclear_read_long_chain")
    except ReadError as exc:
        report("refused", "unclear_read_long_chain", exc)
    except BaseException as exc:  # noqa: BLE001
        report("unclear", "unclear_read_long_chain", f"{type(exc).__name__}: {exc}")


# ------------------------------------------------------------------ silently wrong: configs, resume

@case
def silent_configs():
    from plm_interp import PLMConfig
    from plm_interp.training import TrainConfig, Trainer
    expect_refusal("silent_adam_eps_inf", lambda: TrainConfig(max_steps=3, adam_eps=math.inf), ("adam_eps",))
    expect_refusal("silent_adam_eps_1e30", lambda: TrainConfig(max_steps=3, adam_eps=1e30), ("adam_eps",))
    expect_refusal("unclear_lr_1e300", lambda: TrainConfig(max_steps=3, lr=1e300), ("train.lr",))
    expect_refusal("silent_ln_eps_1e30", lambda: PLMConfig(d_model=16, n_layers=1, n_heads=2, d_vocab=8, n_ctx=8,
                                                           eps=1e30), ("eps",))
    expect_refusal("silent_d_mlp_true", lambda: PLMConfig(d_model=16, n_layers=1, n_heads=2, d_vocab=8, n_ctx=8,
                                                          d_mlp=True), ("d_mlp",))
    expect_refusal("silent_warmup_beyond", lambda: Trainer(train_helpers.tiny_model(), train_helpers.source(),
                                                           TrainConfig(max_steps=3, warmup_steps=1000)).total_steps,
                   ("warmup_steps",), warn_ok=True)


@case
def silent_hard_small_n_ctx():
    expect_cli_refusal("silent_igsm_hard_n_ctx_64",
                       ["train", "igsm", "--set", "task.preset=hard", "--set", "model.preset=tiny", "--set",
                        "model.n_ctx=64", "--set", "train.max_steps=1", "--set", "train.batch_size=2", "--set",
                        "train.progress=false", "--run-dir", "hard64"], ("n_ctx",))


@case
def silent_resume_without_config():
    cli(["train", "count_test", *BASE, "--run-dir", "rc"])
    shutil.rmtree("rc/final")
    os.unlink("rc/config.json")
    expect_cli_refusal("silent_resume_config_removed_other_lr",
                       ["train", "count_test", *BASE, "--set", "train.lr=0.01", "--run-dir", "rc", "--resume"],
                       ("train.lr",))
    state = torch.load("rc/checkpoints/step_00000004/state.pt", weights_only=True)
    report("refused" if "torch_threads" in state else "silent", "silent_threads_not_recorded")


# ------------------------------------------------------------------ model arguments, checkpoints, analyses

@case
def silent_model_args():
    m = train_helpers.tiny_model()
    t = torch.randint(0, 16, (2, 8))
    expect_refusal("silent_loss_all_false_mask",
                   lambda: m(t, return_type="loss", loss_mask=torch.zeros(2, 8, dtype=torch.bool)).item(), ("mask",))
    expect_refusal("silent_loss_one_token", lambda: m(torch.tensor([[3]]), return_type="loss").item(), ("token",))
    expect_refusal("silent_stop_at_layer_-99", lambda: m(t, stop_at_layer=-99).shape, ("stop_at_layer",))


def _saved():
    d = Path(tempfile.mkdtemp()) / "m"
    train_helpers.tiny_model().save_pretrained(d)
    return d


@case
def silent_checkpoints():
    from plm_interp.checkpoint import load_model
    from safetensors.torch import load_file, save_file
    d = _saved()
    meta = json.loads((d / "config.json").read_text())
    meta["format_version"] = 99
    (d / "config.json").write_text(json.dumps(meta))
    expect_refusal("silent_format_version_99", lambda: load_model(d).cfg.d_model, ("format_version",))
    d = _saved()
    s = {k: v.to(torch.int64) for k, v in load_file(str(d / "model.safetensors")).items()}
    save_file(s, str(d / "model.safetensors"))
    meta = json.loads((d / "config.json").read_text())
    meta.pop("weights_sha256")
    (d / "config.json").write_text(json.dumps(meta))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expect_refusal("silent_int64_weights", lambda: load_model(d).cfg.d_model, ("int64",))
    d = _saved()
    (d / "config.json").write_bytes(b"\xff\xfe")
    expect_refusal("unclear_non_utf8_model_config", lambda: load_model(d), ("config.json",))
    if not torch.cuda.is_available():
        expect_refusal("unclear_load_model_cuda", lambda: load_model(_saved(), device="cuda"), ("device",))
        expect_refusal("unclear_model_device_cuda",
                       lambda: type(train_helpers.tiny_model())(train_helpers.tiny_model().cfg.replace(device="cuda")),
                       ("device",))


@case
def unclear_run_dir_faults():
    from plm_interp.training import lock
    cli(["train", "count_test", *BASE, "--run-dir", "cf"])
    os.unlink("cf/config.json")
    shutil.rmtree("cf/checkpoints")
    shutil.rmtree("cf/final")
    Path("cf/checkpoints").write_text("x")
    expect_cli_refusal("unclear_checkpoints_is_a_file",
                       ["train", "count_test", *BASE, "--run-dir", "cf", "--resume"], ("checkpoints",))
    real = lock.acquire

    def ro(d, *a, **k):
        raise PermissionError(13, "Permission denied", str(d))
    lock.acquire = ro
    try:
        expect_cli_refusal("unclear_read_only_run_dir", ["train", "count_test", *BASE, "--run-dir", "ro"], ("ro",))
    finally:
        lock.acquire = real
    cli(["train", "count_test", *BASE, "--run-dir", "u8"])
    good = Path("u8/config.json").read_bytes()
    Path("u8/config.json").write_bytes(b"\xff" + good)
    expect_cli_refusal("unclear_non_utf8_run_config", ["train", "count_test", *BASE, "--run-dir", "u8", "--resume"],
                       ("config.json",))
    Path("u8/config.json").write_bytes(good)
    Path("u8/metrics.jsonl").write_bytes(b'{"step": 1}\n\xff\xfe\n{"step": 2}\n')
    from plm_interp.training import read_metrics
    expect_refusal("unclear_non_utf8_metrics", lambda: read_metrics("u8"), ("metrics.jsonl",))


@case
def unclear_resume_other_shape():
    from plm_interp import HookedPLM, preset_config
    from plm_interp.training import TrainConfig, Trainer
    d = Path(tempfile.mkdtemp())
    Trainer(train_helpers.tiny_model(), train_helpers.source(), TrainConfig(max_steps=4, batch_size=4, ckpt_every=2,
            progress=False), d).fit()
    shutil.rmtree(d / "checkpoints" / "step_00000004")
    big = HookedPLM(preset_config("tiny", d_vocab=16, n_ctx=16, d_model=64, n_heads=2))
    expect_refusal("unclear_resume_other_shape",
                   lambda: Trainer(big, train_helpers.source(), TrainConfig(max_steps=4, batch_size=4, progress=False),
                                   d).fit(), (str(d),))


@case
def silent_analyses():
    import analyses
    from plm_interp import HookedPLM, preset_config
    from tasks.cfg import CFGTask
    task = CFGTask("demo")
    model = HookedPLM(preset_config("tiny", d_vocab=task.d_vocab, n_ctx=64, seed=0, task=task.spec()))
    expect_refusal("silent_generation_cut_-5",
                   lambda: analyses.generation(model, task, n=4, cut=-5, kl_strings=2, progress=False).accuracy,
                   ("cut",))
    expect_refusal("silent_generation_cut_past_length",
                   lambda: analyses.generation(model, task, n=4, cut=10**6, kl_strings=2, progress=False).accuracy,
                   ("cut",))
    from analyses.shared.igsm_inputs import eval_problems
    from tasks.igsm import IGSMTask
    expect_refusal("silent_sets_empty", lambda: eval_problems(IGSMTask("tiny"), 4, [], 0), ("sets",))


counts = {}
for cls, name in RESULTS:
    kind = name.split("_", 1)[0]
    counts.setdefault(kind, {}).setdefault(cls, 0)
    counts[kind][cls] += 1
print("SUMMARY", json.dumps(counts, sort_keys=True))
