"""The application layer: the ``plm-interp`` command line and what it drives (experiments)."""
