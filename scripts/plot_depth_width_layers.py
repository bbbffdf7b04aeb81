"""Draw docs/figures/experiments/part2_1_depth_width_layers.png: the nece V-probe of both depth_width arms at every
layer, on one axis of relative depth (the arms have 8 and 2 layers), trained beside random-init, with the majority
guess (accuracy) and chance (balanced accuracy), from the runs' ``analyses/v_probe-nece/result.json``.

    python scripts/plot_depth_width_layers.py RUNS_DIR OUT.png      # RUNS_DIR as given to plm-interp experiment
"""
import json
import sys
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from plm_interp.io import atomic_write_png  # noqa: E402

runs = sys.argv[1]
arms = {"deep 8x96": "igsm-tiny-8x96-s0", "wide 2x192": "igsm-tiny-2x192-s0"}
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for (label, run), c in zip(arms.items(), ["C0", "C1"]):
    r = json.load(open(f"{runs}/{run}/analyses/v_probe-nece/result.json"))
    L = max(r["layers"])
    for model, ls in (("trained", "-"), ("random-init", ":")):
        recs = sorted((x["layer"], x) for x in r["records"] if x["model"] == model)
        for ax, key in zip(axes, ("acc", "balanced_acc")):
            ax.plot([l / L for l, _ in recs], [100 * x[key] for _, x in recs], ls, color=c, marker="o", ms=3,
                    label=f"{label}, {model}")
    maj = next(x["majority"] for x in r["records"])
axes[0].axhline(100 * maj, color="grey", lw=0.8, label="majority guess")
axes[1].axhline(50, color="grey", lw=0.8, label="chance")
for ax, t in zip(axes, ("accuracy %", "balanced accuracy % (mean of per-label)")):
    ax.set_xlabel("layer / number of layers (0 = embeddings)")
    ax.set_ylabel(t)
    ax.legend(fontsize=7)
fig.suptitle("part2_1_depth_width: nece V-probe by relative depth (iGSM tiny, seed 0, n = 512 held-out queries)",
             fontsize=9)
fig.tight_layout()
atomic_write_png(sys.argv[2], fig, dpi=100)
