"""The application: the ``plm-interp`` command line, ``quickstart``, the papers' experiments, the GPU check and
run configs.

The top floor, and the only package that joins the others. Imports go downward only::

    plm_app  ->  analyses  ->  tasks  ->  plm_interp (the library: model, training, probes, ...)

so the library never imports a task, an analysis or this package (``tests/test_architecture.py`` checks it).
It lived at ``plm_interp.app`` before; that name still imports, as a deprecated alias of this package.
See docs/architecture.md.
"""
