"""plm_interp.validation: the one set of checks behind every config, ``--set`` key and analysis option."""
from dataclasses import dataclass

import pytest

from plm_interp import ConfigError, config
from plm_interp.training import config as train_config
from plm_interp.validation import check_choice, check_known, check_types


@dataclass
class Spec:
    width: int = 1
    rate: float = 0.5
    shape: tuple[int, int] = (1, 2)


def test_the_model_and_training_configs_raise_the_one_error_type():
    assert config.ConfigError is ConfigError is train_config.ConfigError


def test_check_known_names_the_unknown_key_for_a_dataclass_or_a_list_of_names():
    check_known(Spec, {"width": 3}, "spec")
    with pytest.raises(ConfigError, match=r"\['spec.depth'\].*\['rate', 'shape', 'width'\]"):
        check_known(Spec, {"depth": 3}, "spec")
    with pytest.raises(ConfigError, match=r"model.rotary"):
        check_known(("rotary_dim", "d_model"), {"rotary": 3}, "model")


def test_check_types_converts_losslessly_and_names_a_wrong_type():
    assert check_types(Spec, {"rate": 1, "shape": [3, 4]}, "spec") == {"rate": 1.0, "shape": (3, 4)}
    assert check_types({"width": int}, {"width": 2, "other": "x"}, "spec") == {"width": 2}
    with pytest.raises(ConfigError, match=r"spec.width = True has the wrong type; expected int"):
        check_types(Spec, {"width": True}, "spec")


def test_check_choice_names_the_label_the_value_and_the_choices():
    check_choice("train.schedule", "linear", ("linear", "cosine"))
    with pytest.raises(ConfigError, match=r"train.schedule = 'step' is not one of \['linear', 'cosine'\]"):
        check_choice("train.schedule", "step", ("linear", "cosine"))
