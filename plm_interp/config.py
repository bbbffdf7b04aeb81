"""The model config's public home: ``PLMConfig``, the size presets (``PRESETS``, ``preset_config``) and
``ConfigError``, as ``from plm_interp.config import PLMConfig`` has always found them.

``PLMConfig`` is defined in ``plm_interp/model/config.py``, beside the model and the positional schemes whose
registry it reads; ``ConfigError`` and the checks behind every config in ``plm_interp/validation.py``.
"""
from plm_interp.model.config import (ACT_FNS, ATTENTION_DIRS, DERIVED_FIELDS, DTYPES, MAX_LN_EPS, POSITIONAL_SCHEMES,
                                     PRESETS, PLMConfig, preset_config)
from plm_interp.validation import ConfigError

__all__ = ["ACT_FNS", "ATTENTION_DIRS", "DERIVED_FIELDS", "DTYPES", "MAX_LN_EPS", "POSITIONAL_SCHEMES", "PRESETS",
           "ConfigError", "PLMConfig", "preset_config"]
