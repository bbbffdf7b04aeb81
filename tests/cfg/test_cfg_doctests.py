import doctest
import importlib

import pytest

MODULES = ["grammar", "sampler", "parser", "random_grammar", "tokenizer", "task"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    mod = importlib.import_module(f"tasks.cfg.{name}")
    assert doctest.testmod(mod).failed == 0
