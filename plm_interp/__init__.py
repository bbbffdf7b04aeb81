"""plm-interp core: the hooked transformer, its positional schemes, training, decoding and checkpoints."""
__version__ = "0.1.0"
