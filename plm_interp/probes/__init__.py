"""Probe primitives shared by the analyses: streamed activations and the paper's probes."""
from plm_interp.probes.activations import check_layer, residual, stream_residual
from plm_interp.probes.fit import ProbeFit, fit_probes, predict
from plm_interp.probes.multihead import MultiHeadLinearProbe

__all__ = ["MultiHeadLinearProbe", "ProbeFit", "check_layer", "fit_probes", "predict", "residual", "stream_residual"]
