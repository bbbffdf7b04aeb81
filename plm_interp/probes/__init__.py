"""Probe primitives shared by the analyses: cached activations, the paper's probes (the multi-head linear probe of
Part 1, the V-probe of Part 2.1), and their fits, stopped by one rule (:mod:`plm_interp.probes.stopping`)."""
from plm_interp.probes.activations import check_layer, residual, resolve_layers, stream_residual
from plm_interp.probes.cache import cache_residuals
from plm_interp.probes.fit import RIDGE, MultiHeadFit, fit_probe, predict
from plm_interp.probes.lbfgs import STOP, FitReport, fit_lbfgs
from plm_interp.probes.multihead import MultiHeadLinearProbe
from plm_interp.probes.stopping import STOP_RULES, FigureMonitor, FigureStop
from plm_interp.probes.v_probe import VExamples, VFit, VProbe, fit_v_probe, score

__all__ = ["RIDGE", "STOP", "STOP_RULES", "FigureMonitor", "FigureStop", "FitReport", "MultiHeadFit", "MultiHeadLinearProbe",
           "VExamples", "VFit", "VProbe", "cache_residuals", "check_layer", "fit_lbfgs", "fit_probe", "fit_v_probe",
           "predict", "residual", "resolve_layers", "score", "stream_residual"]
