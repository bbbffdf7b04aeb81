"""The application layer: the ``plm-interp`` command line, ``quickstart`` and run configs.

The only layer that joins the others. Imports go downward only::

    plm_interp.app  ->  analyses  ->  tasks  ->  the library (plm_interp.model, .training, .probes, ...)

so the library never imports a task, an analysis or this package (``tests/test_architecture.py`` checks it).
See docs/architecture.md.
"""
