"""plm-interp core: the hooked transformer, its positional schemes, training, decoding and checkpoints.

    >>> from plm_interp import HookedPLM, PLMConfig
"""
from plm_interp.config import POSITIONAL_SCHEMES, PRESETS, ConfigError, PLMConfig, preset_config
from plm_interp.model import HookedPLM, KVCache, lm_loss

__version__ = "0.1.0"

__all__ = ["ConfigError", "HookedPLM", "KVCache", "PLMConfig", "POSITIONAL_SCHEMES", "PRESETS", "lm_loss",
           "preset_config", "__version__"]
