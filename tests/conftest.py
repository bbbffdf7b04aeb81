"""Shared fixtures: tiny models of every positional scheme (seconds on CPU).

First of all, the jaxtyping import hook: every function and dataclass of ``plm_interp``, ``tasks`` and
``analyses`` imported by the tests has its annotations checked at run time by beartype, shapes included
(``Float[Tensor, "batch pos d_model"]`` must agree across the arguments and the return value of one call), so
a shape annotation cannot lie. It must run before any of those packages is imported, hence here, at the top.
Set ``PLM_TYPECHECK=0`` to run without it (e.g. to time the code itself).
"""
from __future__ import annotations

import os

# idempotent: a test module that imports this file again (``from tests.conftest import ...``) must not install a
# second hook nor hand beartype a second generator (two generators collide in beartype's code cache)
if os.environ.get("PLM_TYPECHECK", "1") != "0" and not getattr(__import__("builtins"), "_plm_typecheck_on", False):
    import builtins
    import random

    import beartype._check.code.codemain as _beartype_codegen
    from jaxtyping import install_import_hook
    from typecheck_modules import typechecked_modules

    # beartype checks one random item per container, drawn with Python's global ``random``: that would shift
    # every seeded stream of the code under test (test_the_checks_leave_the_global_random_stream_alone). Its
    # own generator keeps the checks and leaves ``random`` alone.
    _beartype_codegen.getrandbits = random.Random(0).getrandbits
    # is_pep484_tower: an int is a float (PEP 484), as everywhere in Python typing (``temperature=0``)
    install_import_hook(typechecked_modules(), "beartype.beartype(conf=beartype.BeartypeConf(is_pep484_tower=True))")
    builtins._plm_typecheck_on = True

import pytest  # noqa: E402
import torch  # noqa: E402

from plm_interp import POSITIONAL_SCHEMES, HookedPLM, PLMConfig  # noqa: E402

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


def tiny_config(positional: str, **overrides) -> PLMConfig:
    fields = dict(d_model=32, n_layers=2, n_heads=4, d_vocab=11, n_ctx=48, positional=positional, seed=0,
                  rel_max_distance=8)
    fields.update(overrides)
    return PLMConfig(**fields)


def tiny_model(positional: str, **overrides) -> HookedPLM:
    model = HookedPLM(tiny_config(positional, **overrides))
    # Non-zero biases and LN parameters, so tests also exercise them (they start at 0 / 1).
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model.eval()


def pytest_collection_modifyitems(items):
    """Every ``test_issue20_*`` test feeds bad input on purpose: mark it ``bad_input``."""
    for item in items:
        if item.name.startswith("test_issue20_"):
            item.add_marker(pytest.mark.bad_input)


@pytest.fixture(autouse=True)
def _own_control_cache(tmp_path_factory, monkeypatch):
    """Each test keeps the random-init controls it fits in its own folder (analyses/shared/control_cache.py): no
    test reads a control another test, or the user's earlier runs, left behind."""
    monkeypatch.setenv("PLM_CACHE_DIR", str(tmp_path_factory.mktemp("plm_cache")))


@pytest.fixture(autouse=True)
def _user_facing_validation(request):
    """For ``bad_input`` and ``compiled`` tests, switch the runtime type checks off during the test.

    ``bad_input`` tests pass ill-typed values (``max_new_tokens=2.5``, ``return_type="probs"``) to check the
    message the library itself gives; a user has no type checker in front of the library, so beartype answering
    first would test the wrong message. ``compiled`` tests run torch.compile, whose tracer would run the checks
    on fake tensors. Every other test keeps the checks on.
    """
    if not any(request.node.get_closest_marker(m) for m in ("bad_input", "compiled")):
        yield
        return
    import jaxtyping

    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)


@pytest.fixture(params=POSITIONAL_SCHEMES)
def scheme(request) -> str:
    return request.param


@pytest.fixture
def tokens() -> torch.Tensor:
    return torch.randint(0, 11, (3, 20), generator=torch.Generator().manual_seed(2))
