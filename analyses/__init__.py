"""Analyses: each a function ``(model, task=None, ...) -> result`` with ``.table()``, ``.plot()``, ``.save(dir)``."""
