"""Probe primitives: the multi-head probe equals eq. 4.2 by brute force; probes find planted signals only; the
fast fit (full-batch L-BFGS) reaches the optimum a plain gradient-descent fit of the same objective reaches."""
import pytest
import torch
import torch.nn.functional as F

from plm_interp.probes import (STOP, MultiHeadLinearProbe, cache_residuals, check_layer, fit_lbfgs, fit_probe,
                               predict, residual)
from tests.conftest import tiny_model


@pytest.mark.parametrize("mode", ["full", "tridiagonal", "diagonal"])
def test_multihead_probe_matches_equation_4_2_with_padding(mode):
    torch.manual_seed(0)
    probe = MultiHeadLinearProbe(8, 3, n_ctx=10, n_heads=4, width=5, mode=mode)
    x = torch.randn(2, 10, 8)
    valid = torch.ones(2, 10, dtype=torch.bool)
    valid[0, 7:] = False
    out = probe(x, valid)
    f = probe.f(x).view(2, 10, 4, 3)
    for b in range(2):
        for i in range(int(valid[b].sum())):
            ref = torch.zeros(3)
            for r in range(4):
                if mode == "diagonal":
                    ref += f[b, i, r]
                    continue
                ok = valid[b] & ((torch.arange(10) - i).abs() <= 1 if mode == "tridiagonal" else True)
                logits = torch.stack([probe.P[i, r] @ probe.P[k, r] for k in range(10)])
                w = torch.softmax(logits.masked_fill(~ok, float("-inf")), 0)
                ref += (w[:, None] * f[b, :, r]).sum(0)
            torch.testing.assert_close(out[b, i], ref, atol=1e-5, rtol=1e-5)


def _planted(model, tokens):
    """Labels that are a fixed linear function of the layer-1 residual (so a linear probe can reach 100%)."""
    acts = residual(model, tokens, 1)
    direction = torch.randn(acts.shape[-1], generator=torch.Generator().manual_seed(0))
    score = acts @ direction
    return (score > score.median()).long()


def test_probe_finds_a_planted_linear_label_and_not_a_shuffled_one():
    model = tiny_model("rot")
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 11, (600, 12), generator=gen)
    valid = torch.ones_like(tokens, dtype=torch.bool)
    labels = _planted(model, tokens)
    shuffled = labels.flatten()[torch.randperm(labels.numel(), generator=gen)].view_as(labels)
    acts = cache_residuals(model, tokens, [1])[1]
    acc = {}
    for name, lab in (("planted", labels), ("shuffled", shuffled)):
        probe = MultiHeadLinearProbe(32, 2, 12, n_heads=2, width=8, mode="diagonal")
        report = fit_probe(probe, acts[:400], valid[:400], lab[:400])
        assert report.converged and report.iterations < STOP["max_iter"]
        acc[name] = float((predict(probe, acts[400:], valid[400:]) == lab[400:]).float().mean())
    assert acc["planted"] > 0.95
    assert abs(acc["shuffled"] - 0.5) < 0.06


def test_bad_layers_and_empty_data_are_refused():
    model = tiny_model("rot")
    with pytest.raises(ValueError, match="layer = 7"):
        check_layer(model, 7)
    probe = MultiHeadLinearProbe(32, 2, 4)
    with pytest.raises(ValueError, match="empty"):
        fit_probe(probe, torch.zeros(3, 4, 32), torch.ones(3, 4, dtype=torch.bool), torch.full((3, 4), -1))
    with pytest.raises(ValueError, match="max_iter = 0"):
        fit_probe(probe, torch.zeros(3, 4, 32), torch.ones(3, 4, dtype=torch.bool), torch.zeros(3, 4).long(),
                  max_iter=0)
    with pytest.raises(ValueError, match="mode"):
        MultiHeadLinearProbe(32, 2, 4, mode="banded")


def test_stop_at_layer_returns_the_cached_residual(tokens):
    model = tiny_model("abs")
    _, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(residual(model, tokens, 0), cache["blocks.0.hook_resid_pre"])
    torch.testing.assert_close(residual(model, tokens, 2), cache["blocks.1.hook_resid_post"])


def test_cache_fills_every_layer_in_one_pass_per_batch(tokens):
    """One forward per batch serves all layers, and each layer equals the run_with_cache residual."""
    model = tiny_model("rot")
    _, cache = model.run_with_cache(tokens)
    calls = []
    model.blocks[0].hook_resid_pre.add_hook(lambda act, hook: calls.append(act.shape[0]))
    acts = cache_residuals(model, tokens, [0, 1, 2], batch_size=3)
    model.reset_hooks()
    assert sum(calls) == tokens.shape[0]
    torch.testing.assert_close(acts[0], cache["blocks.0.hook_resid_pre"])
    torch.testing.assert_close(acts[1], cache["blocks.0.hook_resid_post"])
    torch.testing.assert_close(acts[2], cache["blocks.1.hook_resid_post"])


def _objective(probe, x, valid, labels, ridge):
    """The fitted objective written out independently: mean CE at labelled positions + ridge/2 * |weights|^2."""
    sel = labels >= 0
    out = probe(x, valid)[sel]
    mix = 0.0 if probe.P is None else (probe.P * probe.P).sum(-1).mean()  # mean self-logit <P_i, P_i>
    return F.cross_entropy(out, labels[sel]) + 0.5 * ridge * ((probe.f.weight ** 2).sum() + mix)


def _gradient_descent(probe, x, valid, labels, ridge, lr, steps):
    opt = torch.optim.SGD(probe.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        _objective(probe, x, valid, labels, ridge).backward()
        opt.step()
    return probe


def _small_case(mode):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(40, 6, 5, generator=gen)
    valid = torch.ones(40, 6, dtype=torch.bool)
    valid[::3, 4:] = False
    # whiten over the valid positions here (mean 0, identity covariance), so the fit's own whitening is a rotation
    # and the ridge on the raw weights below is the ridge the fit applies (it is rotation-invariant)
    v = x[valid].double()
    evals, evecs = torch.linalg.eigh(torch.cov(v.T, correction=0))
    x = ((x.double() - v.mean(0)) @ evecs / evals.sqrt() @ evecs.T).float()
    truth = torch.randn(5, 3, generator=gen)
    labels = (x.roll(1, dims=1) @ truth + x @ truth).argmax(-1)  # depends on the left neighbour too
    labels = labels.masked_fill(~valid, -1)
    return x, valid, labels


def test_lbfgs_reaches_the_gradient_descent_optimum_of_the_linear_probe():
    """Diagonal probe = ridge logistic regression: strictly convex, so both fits must land on the same weights."""
    x, valid, labels = _small_case("diagonal")
    ridge = 1e-2
    fast = MultiHeadLinearProbe(5, 3, 6, n_heads=2, width=4, mode="diagonal", seed=0)
    report = fit_probe(fast, x, valid, labels, ridge=ridge)
    assert report.converged
    # plain GD on the summed map W = sum_r W_r (the objective's ridge acts on that map; see fit.py)
    ref = torch.nn.Linear(5, 3)
    sel = labels >= 0
    opt = torch.optim.SGD(ref.parameters(), lr=1.0)
    for _ in range(4000):
        opt.zero_grad()
        (F.cross_entropy(ref(x[sel]), labels[sel]) + 0.5 * ridge * (ref.weight ** 2).sum()).backward()
        opt.step()
    W = fast.f.weight.view(2, 3, 5).sum(0)
    torch.testing.assert_close(W, ref.weight.detach(), atol=2e-3, rtol=0)
    # the unpenalised bias is defined up to a shift shared by all classes (softmax is shift-invariant)
    b_fast, b_ref = fast.f.bias.view(2, 3).sum(0), ref.bias.detach()
    torch.testing.assert_close(b_fast - b_fast.mean(), b_ref - b_ref.mean(), atol=2e-3, rtol=0)


def test_lbfgs_reaches_the_gradient_descent_optimum_of_the_tridiagonal_probe():
    """Non-convex in P: from the same seeded start, L-BFGS and long plain GD end at the same loss and predictions."""
    x, valid, labels = _small_case("tridiagonal")
    ridge = 0.1
    fast = MultiHeadLinearProbe(5, 3, 6, n_heads=2, width=4, mode="tridiagonal", seed=0)
    slow = MultiHeadLinearProbe(5, 3, 6, n_heads=2, width=4, mode="tridiagonal", seed=0)
    # GD starts there too; a tight tolerance, so the comparison tests the optimiser, not the stopping rule
    report = fit_probe(fast, x, valid, labels, ridge=ridge, warm_start=False, rel_tol=1e-7)
    _gradient_descent(slow, x, valid, labels, ridge, lr=2.0, steps=2500)
    assert report.converged
    with torch.no_grad():
        lf, ls = float(_objective(fast, x, valid, labels, ridge)), float(_objective(slow, x, valid, labels, ridge))
    assert abs(lf - report.loss) < 1e-5  # the report states the objective it minimised
    assert abs(lf - ls) < 3e-3 * ls  # the same optimum (GD is still creeping towards it)
    sel = labels >= 0
    assert (predict(fast, x, valid)[sel] == predict(slow, x, valid)[sel]).float().mean() > 0.95


def test_the_full_probe_fit_ends_at_a_point_gradient_descent_cannot_improve():
    """The full probe has several local optima (GD and L-BFGS from one start may pick different ones), so the check
    is local: plain GD started from the L-BFGS solution neither lowers the loss nor changes a prediction."""
    x, valid, labels = _small_case("full")
    ridge = 0.1
    fast = MultiHeadLinearProbe(5, 3, 6, n_heads=2, width=4, mode="full", seed=0)
    report = fit_probe(fast, x, valid, labels, ridge=ridge, rel_tol=1e-7)
    assert report.converged
    before = predict(fast, x, valid)
    with torch.no_grad():
        lf = float(_objective(fast, x, valid, labels, ridge))
    assert abs(lf - report.loss) < 1e-5
    _gradient_descent(fast, x, valid, labels, ridge, lr=2.0, steps=1500)
    with torch.no_grad():
        assert lf - float(_objective(fast, x, valid, labels, ridge)) < 2e-3 * lf
    assert (predict(fast, x, valid)[labels >= 0] == before[labels >= 0]).float().mean() > 0.97


def test_a_budget_that_stops_early_says_so():
    x, valid, labels = _small_case("full")
    probe = MultiHeadLinearProbe(5, 3, 6, n_heads=2, width=4, mode="full", seed=0)
    short = fit_probe(probe, x, valid, labels, max_iter=2)
    assert not short.converged and short.iterations == 2
    assert fit_lbfgs(lambda: (probe.f.weight ** 2).sum(), probe.f.parameters()).converged


def test_probe_init_depends_on_seed_only_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    a, b = MultiHeadLinearProbe(8, 3, n_ctx=10, n_heads=2, width=5), MultiHeadLinearProbe(8, 3, n_ctx=10, n_heads=2, width=5)
    c = MultiHeadLinearProbe(8, 3, n_ctx=10, n_heads=2, width=5, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.f.weight, c.f.weight)


def test_length_grouped_full_loss_equals_the_padded_form_in_value_and_gradient():
    """The fast full-mode loss (rows grouped by their valid-prefix length, one product per group) against the
    padded softmax-and-renormalise form, on strings of five different lengths: same loss, same gradients."""
    from plm_interp.probes import fit as fm

    torch.manual_seed(3)
    n, pos, d, H, C = 12, 9, 6, 3, 4
    z = torch.randn(n, pos, d)
    lengths = torch.tensor([9, 5, 7, 9, 3, 5, 8, 7, 9, 3, 8, 5])
    valid = torch.arange(pos)[None] < lengths[:, None]
    labels = torch.randint(0, C, (n, pos)).masked_fill(~valid, -1)
    labels[:, 0] = -1  # BOS is read, never scored
    assert fm._prefix_groups(z, valid, labels) is not None
    grads = []
    groups = fm._prefix_groups(z, valid, labels)
    y_grouped, y_padded = torch.cat([g[4] for g in groups]), labels[labels >= 0]
    for build in (lambda f, fac: lambda: F.cross_entropy(fm._grouped_out(f, fac, H, C, groups)(), y_grouped),
                  lambda f, fac: lambda: F.cross_entropy(fm._padded_out(f, fac, H, C, z, valid, labels)(), y_padded)):
        f = torch.nn.Linear(d, H * C)
        f.load_state_dict({"weight": torch.linspace(-1, 1, H * C * d).view(H * C, d), "bias": torch.zeros(H * C)})
        fac = fm._Factor(torch.randn(pos, H, 16))
        with torch.no_grad():
            fac.F.copy_(torch.linspace(-1.5, 1.5, fac.F.numel()).view_as(fac.F))
        loss = build(f, fac)()
        loss.backward()
        grads.append((float(loss.detach()), f.weight.grad.clone(), fac.F.grad.clone()))
    (l1, w1, p1), (l2, w2, p2) = grads
    assert abs(l1 - l2) < 1e-5
    torch.testing.assert_close(w1, w2, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(p1, p2, atol=1e-5, rtol=1e-4)


def test_the_full_loss_form_is_chosen_by_rows_per_length_and_both_forms_agree():
    """Many rows per length: the grouped form; nearly unique lengths (cfg3b-like): the padded form. The choice
    depends on the data only (a rerun takes the same path), and whichever is chosen gives the same loss."""
    from plm_interp.probes import fit as fm

    torch.manual_seed(0)
    pos, d, H, C = 9, 4, 2, 3
    f = torch.nn.Linear(d, H * C)
    fac = fm._Factor(torch.randn(pos, H, 16))
    losses = {}
    for lengths in (torch.tensor([9, 5] * 16), torch.arange(3, 10).repeat(2)):  # 16 rows per length; 2 per length
        n = len(lengths)
        z = torch.randn(n, pos, d)
        valid = torch.arange(pos)[None] < lengths[:, None]
        labels = torch.randint(0, C, (n, pos)).masked_fill(~valid, -1)
        name, loss = fm._full_loss(f, fac, H, C, z, valid, labels)
        padded = F.cross_entropy(fm._padded_out(f, fac, H, C, z, valid, labels)(), labels[labels >= 0])
        losses[name] = (float(loss()), float(padded))
    assert set(losses) == {"grouped", "padded"}
    for chosen, padded in losses.values():
        assert abs(chosen - padded) < 1e-5


def test_a_valid_mask_with_holes_uses_the_padded_form():
    from plm_interp.probes import fit as fm

    valid = torch.ones(2, 5, dtype=torch.bool)
    valid[0, 2] = False
    assert fm._prefix_groups(torch.zeros(2, 5, 3), valid, torch.zeros(2, 5).long()) is None


def test_the_figure_rule_stops_after_its_patience_and_keeps_the_best_weights():
    """A planted validation curve: rises, peaks, then drifts down by less than min_delta per check. The rule stops
    `patience` checks after the last gain of at least min_delta and writes the peak's weights back."""
    from plm_interp.probes import FigureMonitor, FigureStop

    w = torch.zeros(1)
    curve = iter([0.50, 0.70, 0.80, 0.8005, 0.8009, 0.7990, 0.7980, 0.7970, 0.60])
    monitor = FigureMonitor.of(lambda: next(curve), [w], FigureStop(min_delta=0.001, patience=3))
    stopped_at = None
    for step in range(1, 10):
        w.fill_(step)  # the "weights" at this check
        if monitor.check(step):
            stopped_at = step
            break
    # gains of >= 0.1 point at checks 1, 2, 3; check 4 (+0.05) and 5 (+0.04 over 3's) do not reset the patience
    assert stopped_at == 6 and monitor.converged and "3 checks" in monitor.reason
    assert monitor.best == 0.8009 and monitor.best_step == 5   # any gain keeps the better weights
    monitor.restore()
    assert float(w) == 5
    assert [v for _, v in monitor.curve] == [0.5, 0.7, 0.8, 0.8005, 0.8009, 0.799]


def test_relative_patience_waits_longer_after_a_late_gain():
    """With relative_patience = 1, a gain at check c buys max(patience, c) more checks: a late plateau as long as
    the fixed window no longer ends the fit, and the late climb after it is kept."""
    from plm_interp.probes import FigureMonitor, FigureStop

    # checks 0..: a rise to 0.80 at check 8, a plateau of 5 checks, then a climb to 0.85 at check 14
    values = [0.5, 0.6, 0.65, 0.7, 0.72, 0.74, 0.76, 0.78, 0.80] + [0.80] * 5 + [0.85] + [0.85] * 40

    def run(rule):
        curve = iter(values)
        monitor = FigureMonitor.of(lambda: next(curve), [torch.zeros(1)], rule)
        for step in range(len(values)):
            if monitor.check(step):
                return step, monitor
        return None, monitor

    stopped, fixed = run(FigureStop(min_delta=0.001, patience=3))
    assert stopped == 11 and fixed.best == 0.80          # the fixed window quits on the plateau
    stopped, grown = run(FigureStop(min_delta=0.001, patience=3, relative_patience=1.0))
    assert grown.best == 0.85 and grown.best_step == 14
    assert stopped == 14 + 14                             # the gain at check 14 buys 14 more checks
    assert FigureStop(patience=3, relative_patience=0.5).window(10) == 5
    assert FigureStop(patience=3, relative_patience=0.5).window(2) == 3
    with pytest.raises(ValueError, match="relative_patience"):
        FigureStop(relative_patience=-1)


def test_a_figure_rule_fit_holds_out_validation_rows_and_stops_near_the_loss_fit():
    """stop="figure" fits on the first 80% of the rows and watches the last 20%; on a planted linear label its test
    figure is the loss-converged fit's (within a point) after fewer iterations."""
    model = tiny_model("rot")
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 11, (600, 12), generator=gen)
    valid = torch.ones_like(tokens, dtype=torch.bool)
    labels = _planted(model, tokens)
    acts = cache_residuals(model, tokens, [1])[1]
    acc, iters = {}, {}
    for stop in ("figure", "loss"):
        probe = MultiHeadLinearProbe(32, 2, 12, n_heads=2, width=8, mode="tridiagonal")
        report = fit_probe(probe, acts[:400], valid[:400], labels[:400], stop=stop)
        acc[stop] = float((predict(probe, acts[400:], valid[400:]) == labels[400:]).float().mean())
        iters[stop] = report.iterations
        if stop == "figure":
            assert report.figure["checks"] == len(report.figure["val_curve"]) >= 1
            assert report.figure["best_val_acc"] == max(v for _, v in report.figure["val_curve"])
        else:
            assert report.figure is None
    assert abs(acc["figure"] - acc["loss"]) < 0.01 and acc["loss"] > 0.9
    assert iters["figure"] <= iters["loss"]
    with pytest.raises(ValueError, match="stop = 'budget'"):
        fit_probe(MultiHeadLinearProbe(32, 2, 12), acts[:4], valid[:4], labels[:4], stop="budget")
