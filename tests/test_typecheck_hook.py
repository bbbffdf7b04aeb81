"""The runtime shape checks are on in the test suite (tests/conftest.py): a wrong shape is caught at the call."""
from __future__ import annotations

import pytest
import torch
from jaxtyping import TypeCheckError

from tasks.base import Batch


def test_a_dataclass_field_of_the_wrong_rank_is_refused():
    Batch(tokens=torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(TypeCheckError):
        Batch(tokens=torch.zeros(5, dtype=torch.long))  # "batch pos" needs two axes


def test_shapes_must_agree_across_fields():
    Batch(tokens=torch.zeros(2, 5, dtype=torch.long), loss_mask=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(TypeCheckError):
        Batch(tokens=torch.zeros(2, 5, dtype=torch.long), loss_mask=torch.ones(2, 4, dtype=torch.bool))


def test_a_function_is_checked_on_its_arguments():
    from plm_interp import HookedPLM, preset_config
    from plm_interp.probes.activations import residual

    model = HookedPLM(preset_config("tiny", d_vocab=8, n_ctx=16, seed=0))
    assert residual(model, torch.zeros(2, 4, dtype=torch.long), 1).shape == (2, 4, model.cfg.d_model)
    with pytest.raises(TypeCheckError):
        residual(model, torch.zeros(2, 4), 1)  # float tokens: the annotation says Int
    with pytest.raises(TypeCheckError):
        residual(model, torch.zeros(4, dtype=torch.long), 1)  # one axis: the annotation says [batch, pos]


def test_the_hook_covers_the_packages_but_not_the_self_validating_configs():
    from typecheck_modules import SELF_VALIDATING, typechecked_modules

    names = typechecked_modules()
    assert {"plm_interp.model.attention", "tasks.cfg.parser", "analyses.registry"} <= set(names)
    assert not any(n == m or m.startswith(n + ".") for n in names for m in SELF_VALIDATING)


def test_the_checks_leave_the_global_random_stream_alone():
    import random

    from tasks.cfg import CFGTask, accepts

    g = CFGTask("demo").grammar
    random.seed(5)
    expected = [random.random() for _ in range(3)]
    random.seed(5)
    got = []
    for _ in range(3):
        accepts(g, [[0, 1, 2], [1, 2, 0]])  # a checked call with a list: beartype samples an item
        got.append(random.random())
    assert got == expected
