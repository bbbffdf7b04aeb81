"""Bad configs fail at construction with a message naming the field and the value."""
import pytest

from plm_interp import ConfigError, HookedPLM, PLMConfig, preset_config


@pytest.mark.parametrize(
    "fields, words",
    [
        (dict(d_model=30, n_heads=4), ["d_model", "30", "n_heads"]),
        (dict(positional="alibi"), ["positional", "alibi"]),
        (dict(n_ctx=0), ["n_ctx", "0"]),
        (dict(n_layers=-1), ["n_layers", "-1"]),
        (dict(attention_dir="sideways"), ["attention_dir", "sideways"]),
        (dict(positional="rot", rotary_dim=3), ["rotary_dim", "3"]),
        (dict(positional="uni", n_heads=32, d_model=64), ["n_heads", "32", "uni"]),
        (dict(uni_window_rule="3^h"), ["uni_window_rule", "3^h"]),
        (dict(act_fn="tanh"), ["act_fn", "tanh"]),
    ],
)
def test_bad_config_is_refused_naming_the_field(fields, words):
    base = dict(d_model=32, n_layers=2, n_heads=4, d_vocab=10, n_ctx=16)
    with pytest.raises(ConfigError) as info:
        HookedPLM(PLMConfig(**{**base, **fields}))
    for word in words:
        assert word in str(info.value)


def test_unknown_field_from_dict_is_named():
    with pytest.raises(ConfigError, match="n_embd"):
        PLMConfig.from_dict(dict(d_model=32, n_layers=2, n_heads=4, d_vocab=10, n_ctx=16, n_embd=5))


def test_presets_and_derived_fields():
    cfg = preset_config("gpt2-small", d_vocab=7, n_ctx=512)
    assert (cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head, cfg.d_mlp) == (12, 12, 768, 64, 3072)
    with pytest.raises(ConfigError, match="huge"):
        preset_config("huge", d_vocab=7, n_ctx=8)


def test_tl_field_names_and_scheme_names():
    cfg = PLMConfig(d_model=32, n_layers=2, n_heads=4, d_vocab=10, n_ctx=16, positional="abs")
    assert cfg.positional_embedding_type == "standard"
    assert cfg.n_key_value_heads is None and cfg.attn_only is False
    assert PLMConfig.from_dict(cfg.to_dict()) == cfg
