"""The hooked transformer and its parts."""
from plm_interp.model.hooked_plm import HookedPLM
from plm_interp.model.surface import lm_loss
from plm_interp.model.kv_cache import KVCache

__all__ = ["HookedPLM", "KVCache", "lm_loss"]
