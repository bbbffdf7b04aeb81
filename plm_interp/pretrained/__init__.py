"""Trained models shipped with the package, loadable by name with no network.

    >>> from plm_interp.pretrained import list_models, load_pretrained, model_card
    >>> list_models()                                    # doctest: +SKIP
    ['cfg3b-abs', 'cfg3b-rot', 'demo-rot', 'igsm-small']
    >>> model = load_pretrained("demo-rot")               # doctest: +SKIP
    >>> print(model_card("demo-rot"))                     # doctest: +SKIP

Each model is a directory ``models/<name>/``: ``model.safetensors`` + ``config.json`` (exactly what
:func:`plm_interp.checkpoint.save_model` writes; the task is in ``config.json``), ``card.json`` (training and
measured figures) and ``MODEL_CARD.md`` (rendered from it). :func:`ship_model` writes such a directory from a
training run. Set ``PLM_INTERP_MODELS`` (``os.pathsep``-separated directories) to load your own models by name.
"""
from plm_interp.pretrained.card import check_card, render_markdown, task_summary
from plm_interp.pretrained.ship import MAX_FILE_BYTES, ship_model
from plm_interp.pretrained.store import (ENV_VAR, MODEL_FILES, PACKAGE_ROOT, card, list_models, load_model_ref,
                                         load_pretrained, model_card, model_dir)

__all__ = ["ENV_VAR", "MAX_FILE_BYTES", "MODEL_FILES", "PACKAGE_ROOT", "card", "check_card", "list_models",
           "load_model_ref", "load_pretrained", "model_card", "model_dir", "render_markdown", "ship_model", "task_summary"]
