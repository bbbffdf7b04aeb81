"""Probe primitives shared by the analyses: cached activations, the paper's probes, fits to convergence."""
from plm_interp.probes.activations import check_layer, residual, stream_residual
from plm_interp.probes.cache import cache_residuals
from plm_interp.probes.fit import RIDGE, fit_probe, predict
from plm_interp.probes.lbfgs import STOP, FitReport, fit_lbfgs
from plm_interp.probes.multihead import MultiHeadLinearProbe

__all__ = ["RIDGE", "STOP", "FitReport", "MultiHeadLinearProbe", "cache_residuals", "check_layer", "fit_lbfgs",
           "fit_probe", "predict", "residual", "stream_residual"]
