"""Writes the notebooks in docs/ (without outputs) from the cells below: ``python docs/make_notebooks.py``.

Why a generator: a notebook's JSON is hard to review in a diff and easy to commit with stale outputs; the cells
here are plain text, and the written ``.ipynb`` files are what ``tests/test_notebooks.py`` executes.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def md(text: str):
    return new_markdown_cell(text.strip())


def code(text: str):
    return new_code_cell(text.strip())


CFG_PATCHING = [
    md(r"""
# Which attention heads carry the NT-end signal? Activation patching on a CFG model

Part 1 of *Physics of Language Models* finds that a GPT trained on a context-free grammar (CFG) stores the parse
tree in its hidden states: whether a token ends a subtree (an **NT-end**) is linearly decodable (Results 4–5),
and attention, once its position bias is removed, goes from NT-ends to NT-ends (Results 6–7). Those are
*correlational* findings. This notebook asks the causal question with **activation patching**:

1. run the model on a *clean* string and on a *corrupted* string whose parse differs at a query position;
2. copy one attention head's output from the clean run into the corrupted run;
3. measure how much of the clean run's NT-end behaviour comes back.

A head whose clean output restores the clean behaviour carries the information that decides the NT-end.
Everything runs on CPU in well under a minute (`demo-rot`: 4 layers × 4 heads, rotary positions, trained on the
built-in `demo` grammar).
"""),
    code(r"""
import warnings
warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm without ipywidgets: plain bars are fine

import numpy as np
import torch
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

import analyses
import tasks
from plm_interp.pretrained import card, load_pretrained
from tasks.cfg.textformat import to_text

model = load_pretrained("demo-rot")           # offline: the weights ship with the package
task = tasks.from_spec(model.cfg.task)        # the task is recorded in the model's config
g = task.grammar
info = card("demo-rot")
print(info["task"]["summary"], "|", {k: info["architecture"][k] for k in ("n_layers", "n_heads", "d_model", "positional")})
print(to_text(g))
"""),
    md(r"""
## 1. Where attention looks: `analyses.attention_boundary`

Raw attention is dominated by position (heads look a fixed distance back). `attention_boundary` removes that
bias: `B[j → i] = A[j → i] − Ā[j − i]`, and averages B over pairs of positions by kind. The paper's point is
that B is largest **NT-end → NT-end**. Level names: level 0 is the root `S`, level 1 the `X/Y/Z` subtrees,
level 2 `P/Q/R`, level 3 `u/v/w` (the paper's NT<sub>l+1</sub>). We study level 2 below.

This tells us *where* heads look, not what they carry forward — the patching below tests that.
"""),
    code(r"""
LEVEL = 2   # the NT level whose ends we study (P/Q/R subtrees; the paper's NT3)

ab = analyses.attention_boundary(model, n=64, progress=False)
b_end = ab.b_mean("end->end", level=LEVEL)          # [layer, head]: mean B from a level-2 NT-end to earlier ones
ab   # a result as a cell's last line shows its headline table, rows and plot (ab.to_pandas() for the rows)
"""),
    md(r"""
## 2. Clean / corrupted pairs with exact ground truth

A corrupted string must (a) stay in the language, so the model is not simply confused by an impossible token,
and (b) have a different parse at a position whose token is the same in both strings, so the difference there
comes only from context. `tasks.cfg.corruption.perturb_subtree(..., mode="resample")` re-expands one level-1
subtree with the same symbol: the string stays in the language, but the lengths of the pieces inside it — and
so the NT boundaries after the change — move.

For each pair we take the first query position `j` after the change where

* the token at `j` is the same in both strings,
* the level-2 NT-end bit differs (labels from the exact parser, `tasks.cfg.parser.parse`; only strings with a
  single parse tree are used, so these labels are *the* labels),
* the grammar's most likely next token differs (exact, from `tasks.cfg.next_token.next_token_logprobs`).

The model is causal, so what follows `j` cannot matter and the two strings may have different lengths.
"""),
    code(r"""
from tasks.cfg.corruption import perturb_subtree
from tasks.cfg.next_token import next_token_logprobs
from tasks.cfg.parser import count_parses, parse
from tasks.cfg.tokenizer import BOS, EOS, N_SPECIAL, PAD

N_PAIRS = 64
clean_lab = task.sample(300, seed=1).labels
corr_lab = perturb_subtree(g, clean_lab, level=1, mode="resample", seed=0)
xs, ys = clean_lab.strings(), corr_lab.strings()
x_parse, y_parse = parse(g, xs), parse(g, ys)          # the parser's trees, the same for both strings
x_next, y_next = next_token_logprobs(g, xs), next_token_logprobs(g, ys)
unique = [a == 1 and b == 1 for a, b in zip(count_parses(g, xs), count_parses(g, ys))]

def token_id(col):
    # next_token_logprobs columns: terminals 0..T-1, then EOS
    return EOS if col == g.n_terminals else col + N_SPECIAL

pairs = []
for i, (x, y) in enumerate(zip(xs, ys)):
    if not unique[i]:
        continue
    for j in range(min(len(x), len(y))):
        if not (x[:j] != y[:j]).any() or x[j] != y[j]:
            continue
        if x_parse[i].b[j, LEVEL] == y_parse[i].b[j, LEVEL]:
            continue
        t_clean, t_corr = int(np.argmax(x_next[i][j + 1])), int(np.argmax(y_next[i][j + 1]))
        if t_clean != t_corr:
            pairs.append(dict(i=i, j=j, clean_end=bool(x_parse[i].b[j, LEVEL]),
                              t_clean=token_id(t_clean), t_corr=token_id(t_corr)))
        break
pairs = pairs[:N_PAIRS]
print(f"{len(pairs)} pairs; the query is a level-{LEVEL} NT-end in the clean string for "
      f"{sum(p['clean_end'] for p in pairs)} of them, in the corrupted one for the rest")

def show(tokens, b):
    # the terminals with '|' after every level-LEVEL NT-end
    return " ".join(g.terminals[t] + ("|" if e else "") for t, e in zip(tokens, b[:, LEVEL]))

p = pairs[0]
print("clean    :", show(xs[p["i"]][: p["j"] + 1], x_parse[p["i"]].b))
print("corrupted:", show(ys[p["i"]][: p["j"] + 1], y_parse[p["i"]].b))
print(f"query = the last token shown (position {p['j']}): a level-{LEVEL} NT-end in the "
      f"{'clean' if p['clean_end'] else 'corrupted'} string only; most likely next token: clean "
      f"{task.tokenizer.to_text([p['t_clean']])}, corrupted {task.tokenizer.to_text([p['t_corr']])}")
"""),
    code(r"""
def to_batch(strings):
    # BOS x EOS PAD..., the layout the model was trained on
    width = max(len(s) for s in strings) + 2
    out = torch.full((len(strings), width), PAD)
    for r, s in enumerate(strings):
        out[r, 0], out[r, len(s) + 1] = BOS, EOS
        out[r, 1 : len(s) + 1] = torch.as_tensor(s) + N_SPECIAL
    return out

clean = to_batch([xs[p["i"]] for p in pairs])
corrupted = to_batch([ys[p["i"]] for p in pairs])
width = max(clean.shape[1], corrupted.shape[1])
clean, corrupted = (torch.nn.functional.pad(t, (0, width - t.shape[1]), value=PAD) for t in (clean, corrupted))
rows = torch.arange(len(pairs))
pos = torch.tensor([p["j"] + 1 for p in pairs])      # +1: BOS comes first
t_clean = torch.tensor([p["t_clean"] for p in pairs])
t_corr = torch.tensor([p["t_corr"] for p in pairs])
sign = torch.tensor([1.0 if p["clean_end"] else -1.0 for p in pairs])
"""),
    md(r"""
## 3. Two metrics: behaviour and representation

* **Logit difference** (behaviour): `LD = logit[t_clean] − logit[t_corr]` at the query, where `t_clean` and
  `t_corr` are the grammar's most likely next tokens after the clean and the corrupted prefix. At an NT-end a
  new subtree starts, so the right next token depends on where the boundary is.
* **NT-end probe** (representation): a linear probe for "a level-2 subtree ends here", trained now on the last
  layer's residual stream of fresh clean strings, then read at the query; signed so that "+" agrees with the
  clean string's parse.

For either metric *M*, a patched run's **recovery** is `(M_patched − M_corrupted) / (M_clean − M_corrupted)`:
0 means the patched head brought nothing back, 1 means it restored the clean run completely.
"""),
    code(r"""
LAST = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"

def residuals(samples):
    tokens = samples.tokens[:, : int(samples.lengths.max()) + 2]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=LAST)
    keep = samples.terminal_mask[:, : tokens.shape[1]]
    return cache[LAST][keep], samples.b[:, : tokens.shape[1], LEVEL][keep].float()

X_train, y_train = residuals(task.sample(200, seed=7))
X_test, y_test = residuals(task.sample(100, seed=8))
mu, sd = X_train.mean(0), X_train.std(0) + 1e-5
w = torch.zeros(X_train.shape[1], requires_grad=True)
bias = torch.zeros(1, requires_grad=True)
opt = torch.optim.LBFGS([w, bias], max_iter=200)

def closure():
    opt.zero_grad()
    logit = (X_train - mu) / sd @ w + bias
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, y_train) + 1e-3 * w.square().sum()
    loss.backward()
    return loss

opt.step(closure)
w, bias = w.detach(), bias.detach()

def probe_logit(resid):
    return (resid - mu) / sd @ w + bias

acc = ((probe_logit(X_test) > 0).float() == y_test).float().mean().item()
majority = max(y_test.mean().item(), 1 - y_test.mean().item())
print(f"level-{LEVEL} NT-end probe, held-out accuracy {acc:.1%} (majority {majority:.1%})")
"""),
    code(r"""
def logit_diff(logits):
    return (logits[rows, pos, t_clean] - logits[rows, pos, t_corr]).mean()

def probe_score(resid):
    return (sign * probe_logit(resid[rows, pos])).mean()

with torch.no_grad():
    clean_logits, clean_cache = model.run_with_cache(clean)
    corr_logits, corr_cache = model.run_with_cache(corrupted)
LD_CLEAN, LD_CORR = logit_diff(clean_logits).item(), logit_diff(corr_logits).item()
PR_CLEAN, PR_CORR = probe_score(clean_cache[LAST]).item(), probe_score(corr_cache[LAST]).item()
print(f"logit difference: clean {LD_CLEAN:+.2f}, corrupted {LD_CORR:+.2f}")
print(f"NT-end probe    : clean {PR_CLEAN:+.2f}, corrupted {PR_CORR:+.2f}")
assert LD_CLEAN > LD_CORR and PR_CLEAN > PR_CORR, "the corruption should move both metrics"
"""),
    md(r"""
## 4. Patch one head at a time

`blocks.{l}.attn.hook_z` is the attention output of every head before the output projection
`[batch, pos, head, d_head]`; head `h`'s contribution to the residual stream is `z[..., h, :] @ W_O[h]`. We
replace head `h`'s slice, at every position, by the clean run's, and read both metrics from the same patched
forward pass (a second hook keeps the last residual for the probe).
"""),
    code(r"""
L, H = model.cfg.n_layers, model.cfg.n_heads
recovery = {"logit difference": torch.zeros(L, H), "NT-end probe": torch.zeros(L, H)}
for layer in range(L):
    for head in range(H):
        kept = {}

        def patch_head(z, hook, head=head):
            z[:, :, head] = clean_cache[hook.name][:, :, head]
            return z

        def keep_resid(resid, hook):
            kept["resid"] = resid

        with torch.no_grad():
            logits = model.run_with_hooks(corrupted, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", patch_head),
                                                                 (LAST, keep_resid)])
        recovery["logit difference"][layer, head] = (logit_diff(logits).item() - LD_CORR) / (LD_CLEAN - LD_CORR)
        recovery["NT-end probe"][layer, head] = (probe_score(kept["resid"]).item() - PR_CORR) / (PR_CLEAN - PR_CORR)

panels = {**recovery, f"B end->end (level {LEVEL}), attention_boundary": b_end}
fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
for ax, (title, grid) in zip(axes, panels.items()):
    vmax = float(grid.abs().max())
    im = ax.imshow(grid.numpy(), cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    ax.set(title=title, xlabel="head", ylabel="layer", xticks=range(H), yticks=range(L))
    for (l, h), v in np.ndenumerate(grid.numpy()):
        ax.text(h, l, f"{v:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, shrink=0.8)
fig.suptitle("recovery when one head's output is patched clean → corrupted (1 = fully restored)")
fig.tight_layout()
"""),
    md(r"""
## 5. The same with `transformer_lens.patching`

TransformerLens' patching helpers work on `HookedPLM` unchanged: `get_act_patch_attn_head_out_all_pos` patches
`hook_z` per head at all positions, exactly the loop above, and returns the metric per `[layer, head]`.
"""),
    code(r"""
import transformer_lens.patching as patching

with torch.no_grad():
    tl_grid = patching.get_act_patch_attn_head_out_all_pos(
        model, corrupted, clean_cache, lambda logits: (logit_diff(logits) - LD_CORR) / (LD_CLEAN - LD_CORR))
torch.testing.assert_close(tl_grid, recovery["logit difference"], atol=1e-4, rtol=1e-4)
print("transformer_lens.patching agrees with the hand-written loop")
"""),
    md(r"""
## 6. Reading the result

Rank the heads by recovery and compare with where attention goes. A head that both attends NT-end → NT-end
(high B) and restores the NT-end when patched is a candidate "boundary reader"; a head with high B but no
recovery looks at boundaries without carrying what decides this one.
"""),
    code(r"""
def top(grid, k=3):
    flat = grid.flatten().argsort(descending=True)[:k]
    return ", ".join(f"L{int(i) // H}H{int(i) % H} ({grid.flatten()[i]:.2f})" for i in flat)

def rank_corr(a, b):
    ra, rb = a.flatten().argsort().argsort().float(), b.flatten().argsort().argsort().float()
    return torch.corrcoef(torch.stack([ra, rb]))[0, 1].item()

for name, grid in recovery.items():
    print(f"{name:17s} top heads: {top(grid)}; rank correlation with B end->end: {rank_corr(grid, b_end):+.2f}")
print(f"the two recovery maps agree with rank correlation "
      f"{rank_corr(recovery['logit difference'], recovery['NT-end probe']):+.2f}")
"""),
    md(r"""
**Caveats.** Whether position `j` ends a subtree can depend on tokens after `j`; the logit-difference metric
uses only the prefix (the grammar's exact next-token distribution), so it is well defined either way, while the
probe reads the full-string label. Single-head recoveries need not add up to 1: heads act together, MLPs sit between them, and
several heads may carry the same information (then patching any one of them restores little). Patching at all
positions mixes *what* a head writes with *where*; `patching.get_act_patch_attn_head_out_by_pos` splits the
query position from the others. 64 pairs and 300 training strings for the probe keep this notebook fast; raise
`N_PAIRS` and the sample sizes for tighter numbers, and see `model_card("demo-rot")` for the model's measured
figures.
"""),
]


IGSM_VPROBE = [
    md(r"""
# V-probing an iGSM model: does it know which parameters are necessary, and which can be computed next?

Part 2.1 of *Physics of Language Models* trains GPT-2 on iGSM grade-school-math problems and asks what its hidden
states know *before* it writes a solution. **V-probing**: cut the sequence at the probe position, append
`[START] A [END]` for a parameter `A`, freeze the model, and train only (1) a rank-8 update of the input
embedding (so the probe can "ask about A") and (2) a linear head on the state at `[END]`. The update is too
small to compute the answer itself, so high accuracy means the model already holds it.

* `nece` (at the end of the question): is `A` needed to answer the question? (Result 4: the model plans)
* `can_next` (at `<SOL>` and after each solution sentence): can `A` be computed from what is known so far?

Each probe is also trained on a **random-init** model of the same shape (the control) and compared with the
**majority** guess. `igsm-small` is a 4-layer, 128-wide rotary model; this notebook runs in well under a minute
on CPU, with small probe budgets (the model card lists figures measured with the full settings).
"""),
    code(r"""
import warnings
warnings.filterwarnings("ignore", message="IProgress not found")   # tqdm without ipywidgets: plain bars are fine

import torch
from IPython.display import Markdown, display

import analyses
import tasks
from plm_interp.pretrained import card, load_pretrained
from tasks.igsm import prompt_ids, verify

model = load_pretrained("igsm-small")
task = tasks.from_spec(model.cfg.task)        # recorded in the model's config
tok = task.tokenizer
info = card("igsm-small")
print(info["task"]["summary"])
rows = ["| metric | this model | paper | command |", "|---|---|---|---|"]
rows += [f"| {f['metric']} | {f['value']} | {f.get('paper_value', '—')} | `{f['command']}` |" for f in info["figures"]]
display(Markdown("**Measured figures from the model card**\n\n" + "\n".join(rows)))
"""),
    md(r"""
## 1. One problem, one generated solution, checked by the verifier

Problems come from the task's held-out template split (`split="test"`). The model writes a solution greedily
after `<SOL>`; `tasks.igsm.verify` re-derives every step from the problem's dependency graph and names the
first error (an unknown parameter, one not yet computable, a wrong value, ...).
"""),
    code(r"""
problems = [s.problem for s in task.sample(8, seed=0, split="test").samples]
prompts = [prompt_ids(p, tok) for p in problems]
outputs = model.generate(prompts, temperature=0.0, eos_token_id=tok.eos,
                         max_new_tokens=model.cfg.n_ctx - max(map(len, prompts)))
reports = [verify(p, tok.decode(out[len(pr):].tolist())) for p, pr, out in zip(problems, prompts, outputs)]
print(f"{sum(r.correct for r in reports)}/{len(reports)} correct")

k = next((i for i, r in enumerate(reports) if r.correct), 0)      # show a correct one if there is one
p, r = problems[k], reports[k]
print("problem :", p.problem_text)
print("model   :", tok.decode(outputs[k][len(prompts[k]):].tolist()))
print("truth   :", p.solution_text, "<ANS>", p.answer)
print("verifier:", "correct" if r.correct else f"{r.error_kind} at step {r.error_step}: {r.message}")
"""),
    md(r"""
## 2. What a probe is asked

`analyses.shared.v_queries.probe_examples` builds the probe inputs from the true dependency graph: the prefix cut at the
probe position, then `[START] A [END]`, with the label. Here are two `can_next` queries on the problem above.
"""),
    code(r"""
from analyses.shared.v_queries import probe_examples

ex = probe_examples(task, [p], "can_next", per_problem=2, seed=0)   # uniform queries, as the paper draws them
for prefix, suffix, label in zip(ex.prefixes, ex.suffixes, ex.labels.tolist()):
    print("...", tok.decode(prefix[-12:]), "||", tok.decode(suffix), "-> can_next =", label)
"""),
    md(r"""
## 3. `can_next` across depth, beside the random-init control

`layer="all"` fits one probe per layer (0 = the embeddings) for the trained model and for the control; the plot
is the depth sweep (the paper's Result 8 asks how the answer builds up with depth). Queries are uniform, as in
the paper (Part 2.1 App. E), so the majority guess is high; the table's first block puts each figure beside the
control, the majority guess, n and a 95% interval, per label when the majority is lopsided, and says in words
whether it beats them. `balanced=True` would draw labels 50/50 instead.
"""),
    code(r"""
# a small, fast fit for the notebook (the default call fits on 2,000 problems until its validation figure converges)
FAST = dict(n_train=64, n_test=32, per_problem=4, fit=dict(max_steps=40, lr=1e-2, batch_size=8), progress=False)

can_next = analyses.v_probe(model, probe="can_next", layer="all", **FAST)
can_next   # the headline table (figure, control, majority, n, verdict) and the plot
"""),
    md(r"""
## 4. `nece` at the last layer

The same probe at the end of the question: does the model know, before writing anything, which parameters the
answer needs?
"""),
    code(r"""
nece = analyses.v_probe(model, probe="nece", **FAST)
display(Markdown(nece.table()))

for res in (can_next, nece):
    last = res.layers[-1]
    trained, control = res.record(last), res.record(last, model="random-init")
    print(f"{res.probe:9s} layer {last}: trained {trained['acc']:.1%}, random-init {control['acc']:.1%}, "
          f"majority {trained['majority']:.1%}  (n = {trained['n']} test queries)")
    print("   ", res.headlines()[0]["verdict"])

# the majority guess, recomputed independently from the probe's own query draws (train seed 0, test seed 1)
from analyses.shared.v_queries import probe_examples
train = probe_examples(task, [x.problem for x in task.sample(64, seed=0).samples], "nece", 4, 0)
test = probe_examples(task, [x.problem for x in task.sample(32, seed=1).samples], "nece", 4, 1)
majority_label = int(torch.bincount(train.labels).argmax())
assert nece.record()["majority"] == float((test.labels == majority_label).float().mean())
assert nece.record()["n"] == len(test) == 128
"""),
    md(r"""
**Reading it.** The evidence is the gap between the trained model and both baselines: the random-init control
shows what a rank-8 update and a linear head can do on features that encode nothing learned, and the majority
shows the label balance. With 64 training problems and 40 probe steps these numbers are noisy (the 95% interval
printed beside each is about +-9 points at n = 128); `analyses.v_probe(model, probe=...)` with its defaults
(1,024 training problems, the rank-8 update on every token, training until the loss plateaus) is the measurement,
and the model card records it with the exact command, its control, majority guess, n and interval.
"""),
]


def write(cells, name: str) -> Path:
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}})
    path = HERE / name
    nbformat.validate(nb)
    path.write_text(nbformat.writes(nb) + "\n")
    return path


if __name__ == "__main__":
    for cells, name in ((CFG_PATCHING, "notebook_cfg_patching.ipynb"), (IGSM_VPROBE, "notebook_igsm_vprobe.ipynb")):
        print(write(cells, name))
