"""The fixtures of tests/conftest.py (tiny models of every scheme, a token batch) for the other-TL-line tests."""
from tests.conftest import scheme, tokens  # noqa: F401  (pytest finds fixtures by name here)
