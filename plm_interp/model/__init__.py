"""The hooked transformer and its parts."""
from plm_interp.model.hooked_plm import HookedPLM, lm_loss
from plm_interp.model.kv_cache import KVCache

__all__ = ["HookedPLM", "KVCache", "lm_loss"]
