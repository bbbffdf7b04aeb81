"""Part 2.1 / 2.2 (iGSM) comparisons: the six V-probes; depth vs width; LoRA vs full fine-tuning on retry data;
retry data from scratch vs clean; retry_weak p = 0.1 vs 0.5.

CPU scale: iGSM ``tiny`` (op <= 3) with the shipped ``igsm-small`` curriculum (scripts/train_igsm_small.sh):
a from-scratch model first trains on op = 1 problems with the loss on every token (where the name-keyed lookup
forms; without it our CPU models plateau far below, docs/part2_experiments.md), then on op <= 3 with the loss on
the solution and sequential letters. Each arm runs both stages on its own data. Paper scale: the recipes under
``recipes/part2_1``, ``recipes/part2_2`` and ``recipes/comparisons`` (GPT2-small, iGSM-med).
"""
from __future__ import annotations

from plm_app.experiments import extract as X
from plm_app.experiments.spec import Analysis, Arm, Experiment, Metric, Shipped, Train

V_PROBES = ("nece", "dep", "known", "value", "can_next", "nece_next")
COMMON = {"task.preset": "tiny", "train.batch_size": 32, "train.log_every": 50, "train.ckpt_every": 500}
#: stage 1 and 2 of the shipped curriculum (scripts/train_igsm_small.sh stages 1 and 3)
OP1 = {"task.op": 1, "task.loss_on": "all", "train.max_steps": 4000, "train.lr": 2e-3, "train.warmup_steps": 200,
       "train.schedule": "constant"}
MAIN = {"task.loss_on": "solution", "task.letter_order": "sequential", "train.max_steps": 5000, "train.lr": 1e-3,
        "train.warmup_steps": 50, "train.schedule": "cosine"}
SMALL = {"model.n_layers": 4, "model.n_heads": 4, "model.d_model": 128, "model.n_ctx": 192,
         "model.positional": "rot"}
#: continued training of a shipped model on retry data: igsm-small-retry's stage (train_igsm_small.sh stage 4)
#: (the base saw the first release's generator and names, so the fine-tuning data keeps them: same vocabulary)
RETRY_FT = {"task.preset": "tiny", "task.generator": "v1", "task.names": "parseable", "task.loss_on": "solution", "task.letter_order": "sequential",
            "task.retry": "perfect", "task.retry_p": 0.5, "task.mask_retry": True, "train.batch_size": 32,
            "train.max_steps": 1500, "train.lr": 1e-3, "train.warmup_steps": 50, "train.schedule": "cosine",
            "train.ckpt_every": 500, "train.log_every": 50}
LORA = {"rank": 8, "alpha": 16, "targets": ["W_Q", "W_V", "W_E"]}  # Part 2.2 App. D.3: q/v rank r, embedding 2r


def curriculum(name: str, model: dict, data: dict, main: dict | None = None) -> Train:
    """Two stages from scratch, both on ``data`` (e.g. retry data): op = 1 (all tokens), then op <= 3 (``main``
    overrides that stage's settings, e.g. its steps)."""
    op1 = Train(f"igsm-tiny-{name}-op1", "igsm", sets={**COMMON, **model, **OP1, **data})
    return Train(f"igsm-tiny-{name}", "igsm", sets={**COMMON, **MAIN, **data, **(main or {})}, after=op1)


def paper(name: str, recipe: str, after: Train | None = None) -> Train:
    return Train(name, "igsm", recipe=recipe, after=after)


MED_QP = paper("igsm-med-qp-paper", "part2_1/igsm_med_qp.toml")
#: the papers evaluate on 4,096 problems per cell (Part 2.1 App. / Part 2.2 App. D.2)
EVAL = Analysis("retry_eval", "retry_eval", cpu={"n": 128}, paper={"n": 4096})
#: V-probe fits at the paper scale: more problems and steps than the CPU's (paper: 100k steps, fresh problems)
PAPER_PROBE = {"n_train": 16_384, "n_test": 4096, "fit": {"max_steps": 20_000}}
ACC = (
    Metric("in-distribution %", "retry_eval", X.igsm_accuracy("in"), {}, count=X.igsm_accuracy("in", key="n")),
    Metric("OOD (op 4-5) %", "retry_eval", X.igsm_ood_accuracy(), count=X.igsm_ood_accuracy("n")),
    Metric("retracted sentences / problem", "retry_eval", X.igsm_accuracy("in", key="retries"), percent=False,
           digits=2),
)


def _acc(paper_in: dict[str, str], paper_ood: dict[str, str] | None = None) -> tuple[Metric, ...]:
    return (Metric(ACC[0].label, "retry_eval", ACC[0].extract, paper_in, count=ACC[0].count),
            Metric(ACC[1].label, "retry_eval", ACC[1].extract, paper_ood or {}, count=ACC[1].count), ACC[2])


part2_1_vprobes = Experiment(
    name="part2_1_vprobes",
    title="Part 2.1: the six V-probes (nece, dep, known, value, can_next, nece_next) on the shipped iGSM models",
    paper_ref="Part 2.1 §4, Fig. 7 (iGSM-med, GPT2-small; read from the figure, not stated in the text): 99%+ in "
              "distribution; random-init ≈ majority 55-95%",
    arms=(Arm("igsm-small", Shipped("igsm-small"), paper("igsm-med-pq-paper", "part2_1/igsm_med_pq.toml")),
          Arm("igsm-small-retry", Shipped("igsm-small-retry"),
              paper("igsm-med-qp-retry-perfect-p0.5-paper", "part2_2/igsm_med_qp_retry_perfect_p05.toml"))),
    analyses=tuple(Analysis(f"v_probe-{p}", "v_probe", cpu={"probe": p},   # the default call (paper's measure)
                            paper={"probe": p, **PAPER_PROBE})
                   for p in V_PROBES),
    metrics=tuple(Metric(f"{p} %", f"v_probe-{p}", X.v_probe_accuracy(),
                         {"igsm-small": "99+ (op=23: 94.7)" if p == "nece" else "99+", "igsm-small-retry": "99+"},
                         controls={"random-init": X.v_probe_accuracy("random-init"),
                                   "majority": X.v_probe_accuracy(key="majority")},
                         count=X.v_probe_accuracy(key="n"))
                  for p in V_PROBES),
    seeds={"cpu": (0, 1, 2), "paper": (0,)},
    note="Ours: the shipped 4-layer models on iGSM tiny (op <= 3); the seeds are the probes' (one trained model "
         "each). The default call: the paper's uniform queries, so each figure stands beside its majority guess "
         "(55-95% in the paper).",
)

DEEP = {"model.n_layers": 8, "model.n_heads": 3, "model.d_model": 96, "model.n_ctx": 192, "model.positional": "rot"}
WIDE = {"model.n_layers": 2, "model.n_heads": 6, "model.d_model": 192, "model.n_ctx": 192, "model.positional": "rot"}
#: depth_width's second stage: 3,000 steps, not MAIN's 5,000, so that both shapes and their per-layer probes
#: finish in one sitting of two cores (a run directory does not outlive the machine it is on); equal for both arms,
#: chosen before either had a result
DW_MAIN = {"train.max_steps": 3000}
part2_1_depth_width = Experiment(
    name="part2_1_depth_width",
    title="Part 2.1: depth vs width at equal (non-embedding) parameters: 8 x 96 vs 2 x 192, same data and budget",
    paper_ref="Part 2.1 §6, Fig. 9-10 (iGSM-med): 20 layers x 576 wide 94.0% vs 4 x 1920 68.6% (mean over cells, "
              "read from Fig. 9); nece probe accuracy rises with depth (Fig. 10)",
    arms=(Arm("deep 8x96", curriculum("8x96", DEEP, {}, DW_MAIN), paper("igsm-med-pq-l20h9-paper",
                                                               "comparisons/igsm_med_pq_l20h9.toml")),
          Arm("wide 2x192", curriculum("2x192", WIDE, {}, DW_MAIN), paper("igsm-med-pq-l4h30-paper",
                                                                 "comparisons/igsm_med_pq_l4h30.toml"))),
    analyses=(Analysis("reasoning_level", "reasoning_level", cpu={"n": 128}, paper={"n": 4096}),
              Analysis("v_probe-nece", "v_probe", cpu={"probe": "nece", "layer": "all"},
                       paper={"probe": "nece", "layer": "all", **PAPER_PROBE})),
    metrics=(
        Metric("accuracy %", "reasoning_level", X.igsm_accuracy("in"), {"deep 8x96": "94.0 (20x576)",
                                                                       "wide 2x192": "68.6 (4x1920)"},
               count=X.igsm_accuracy("in", key="n")),
        *(Metric(f"op={k} %", "reasoning_level", X.igsm_accuracy("in", k), count=X.igsm_accuracy("in", k, "n"))
          for k in (1, 2, 3)),
        Metric("reask %", "reasoning_level", X.igsm_accuracy("reask"), count=X.igsm_accuracy("reask", key="n")),
        Metric("nece probe, last layer %", "v_probe-nece", X.v_probe_accuracy(),
               controls={"random-init": X.v_probe_accuracy("random-init")}),
        Metric("nece probe, middle layer %", "v_probe-nece", X.v_probe_accuracy(layer="middle"),
               controls={"random-init": X.v_probe_accuracy("random-init", layer="middle")}),
    ),
    note="Both have 884,736 non-embedding parameters (12 x layers x width^2); the embedding is 1655 x width. "
         "Ours: the igsm-small curriculum with a 3,000-step second stage (the other experiments' 5,000), both arms. "
         "Per-layer probe accuracy is in each run's analyses/v_probe-nece/plot.png.",
)

part2_2_lora_vs_full = Experiment(
    name="part2_2_lora_vs_full",
    title="Part 2.2: LoRA vs full fine-tuning on retry data, from the same error-free model (same data, steps)",
    paper_ref="Part 2.2 App. D.3 (iGSM-med qp, op = 23, out of distribution; in distribution 99.9-100): LoRA on "
              "retry data gives no significant gain (p = 0.5, r = 8, masked: 78.0, App. Fig. 10); full fine-tuning "
              "helps: 88.6 at p = 0.2 (Fig. 7), 93.8 unmasked / 93.1 masked at p = 0.5 (App. Fig. 10), no more than "
              "retry pretraining (78.3 -> 94.5, §4)",
    arms=(Arm("base (no fine-tuning)", Shipped("igsm-small"), MED_QP),
          Arm("LoRA r=8", Train("igsm-small-retry-lora-r8", "igsm", sets={**RETRY_FT, "train.lora": LORA},
                                after=Shipped("igsm-small")),
              paper("igsm-med-qp-retry-lora-r8-paper", "comparisons/igsm_med_qp_retry_lora_r8.toml", MED_QP)),
          Arm("full fine-tuning", Train("igsm-small-retry-full", "igsm", sets=RETRY_FT, after=Shipped("igsm-small")),
              paper("igsm-med-qp-retry-full-paper", "comparisons/igsm_med_qp_retry_full.toml", MED_QP))),
    analyses=(EVAL,),
    metrics=_acc({"base (no fine-tuning)": "99.9-100", "LoRA r=8": "99.9-100", "full fine-tuning": "99.9-100"},
                 {"base (no fine-tuning)": "78.3 (op=23)", "LoRA r=8": "78.0 (op=23, p=0.5 masked)",
                  "full fine-tuning": "93.1 (op=23, p=0.5 masked)"}),
    seeds={"cpu": (0, 1), "paper": (0,)},  # fine-tuning seeds (data order, adapter init); the base is scored once per seed
    note="Ours: from the shipped igsm-small, 1,500 steps of retry data (p = 0.5, wrong names masked: our CPU "
         "finding, docs/part2_analyses.md) at lr 1e-3; LoRA rank 8 on W_Q, W_V and rank 16 on W_E, alpha 16.",
)

part2_2_retry_pretrain = Experiment(
    name="part2_2_retry_pretrain",
    title="Part 2.2: pretraining on retry data (p = 0.5) vs clean data, from scratch, equal budget",
    paper_ref="Part 2.2 §4 (iGSM-med qp, op = 23, out of distribution): clean 78.3 vs retry data p = 0.5 94.5; in "
              "distribution both 99.9-100 (Fig. 8)",
    arms=(Arm("clean", curriculum("4x128-clean", SMALL, {}), MED_QP),
          Arm("retry p=0.5", curriculum("4x128-retry-p0.5", SMALL, {"task.retry": "perfect", "task.retry_p": 0.5}),
              paper("igsm-med-qp-retry-perfect-p0.5-paper", "part2_2/igsm_med_qp_retry_perfect_p05.toml"))),
    analyses=(EVAL,),
    metrics=_acc({"clean": "99.9-100", "retry p=0.5": "99.9-100"},
                 {"clean": "78.3 (op=23)", "retry p=0.5": "94.5 (op=23)"}),
    note="Ours: iGSM tiny, both curriculum stages on the arm's data (retry sentences unmasked, as the paper).",
)

part2_2_retry_weak = Experiment(
    name="part2_2_retry_weak",
    title="Part 2.2: retry_weak data, p = 0.1 vs 0.5 (and clean), from scratch, equal budget",
    paper_ref="Part 2.2 §6, Fig. 8 (read from the figure; averages over its 30 cells, med and hard, pq and qp, "
              "mostly out of distribution): retry_weak p = 0.1 95.5 vs 91.8 clean, p = 0.5 74.6 (med cells only "
              "≈ 95.4 vs 90.7); in distribution 99.9-100",
    arms=(Arm("clean", curriculum("4x128-clean", SMALL, {}), MED_QP),
          Arm("weak p=0.1", curriculum("4x128-weak-p0.1", SMALL, {"task.retry": "weak", "task.retry_p": 0.1}),
              paper("igsm-med-qp-retry-weak-p0.1-paper", "part2_2/igsm_med_qp_retry_weak_p01.toml")),
          Arm("weak p=0.5", curriculum("4x128-weak-p0.5", SMALL, {"task.retry": "weak", "task.retry_p": 0.5}),
              paper("igsm-med-qp-retry-weak-p0.5-paper", "part2_2/igsm_med_qp_retry_weak_p05.toml"))),
    analyses=(EVAL,),
    metrics=_acc({"clean": "99.9-100", "weak p=0.1": "99.9-100", "weak p=0.5": "99.9-100"},
                 {"clean": "91.8 (30-cell average)", "weak p=0.1": "95.5 (30-cell average)",
                  "weak p=0.5": "74.6 (30-cell average)"}),
    note="Ours: iGSM tiny; the clean arm is the same run as part2_2_retry_pretrain's.",
)

#: part2_1_emergence's second stage: op <= 3 for 100,000 steps (614M tokens; with the op = 1 stage 639M, 10.1x
#: igsm-small's 63.0M), a checkpoint every 1,000 steps, all kept (the log-spaced ones are analysed from them)
LONG = {"train.max_steps": 100_000, "train.ckpt_every": 1000, "train.keep_checkpoints": 101}
part2_1_emergence = Experiment(
    name="part2_1_emergence",
    title="Part 2.1: when does the hidden reasoning appear? Accuracy and the V-probes along one long 8 x 96 run",
    paper_ref="Part 2.1 §4, Fig. 7 (final iGSM-med models only): V-probes 99%+ in distribution; the paper shows "
              "no training curve",
    arms=(Arm("deep 8x96 long", curriculum("8x96-long", DEEP, {}, LONG), MED_QP),),
    analyses=(Analysis("reasoning_level", "reasoning_level", cpu={"n": 128}, paper={"n": 4096}),),
    metrics=(Metric("accuracy %", "reasoning_level", X.igsm_accuracy("in"), count=X.igsm_accuracy("in", key="n")),),
    note="Ours: depth won part2_1_depth_width, so its 8 x 96 shape, the igsm-small curriculum with a 100,000-step "
         "second stage. The curve along training comes from the kept checkpoints (docs/part2_experiments.md).",
)
