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
        (dict(positional="uni", uni_window_rule="3^h"), ["uni_window_rule", "3^h"]),
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


def test_replace_derives_defaulted_fields_again_and_keeps_explicit_ones():
    base = PLMConfig(n_layers=1, d_model=32, n_heads=2, d_vocab=10, n_ctx=8, positional="rot")
    wide = base.replace(d_model=64)
    # the same as building the 64-wide config from scratch: 64 // 2, 4 * 64, 0.8 / sqrt(64)
    assert (wide.d_head, wide.d_mlp, wide.rotary_dim, wide.initializer_range) == (32, 256, 32, 0.1)
    assert base.replace(d_vocab=12).d_vocab_out == 12
    explicit = PLMConfig(n_layers=1, d_model=32, n_heads=2, d_vocab=10, n_ctx=8, d_head=8, d_mlp=40)
    kept = explicit.replace(d_model=64)
    assert (kept.d_head, kept.d_mlp, kept.rotary_dim) == (8, 40, 8)
    assert base.replace(seed=3) == PLMConfig(**{**base.to_dict(), "seed": 3})


def test_another_schemes_setting_reads_none_as_in_transformer_lens():
    """TransformerLens's config has ``rotary_dim`` on every model (None without rotary); code written for it can ask
    any of ours the same. A name no scheme defines is still an AttributeError."""
    from plm_interp.config import PLMConfig

    cfg = PLMConfig(n_layers=1, d_model=16, n_heads=2, n_ctx=8, d_vocab=10, positional="abs")
    assert cfg.rotary_dim is None and cfg.rotary_base is None
    assert "rotary_dim" not in cfg.to_dict()  # not written: it is not this model's setting
    assert PLMConfig(n_layers=1, d_model=16, n_heads=2, n_ctx=8, d_vocab=10, positional="rot").rotary_dim == 8
    with pytest.raises(AttributeError, match="rotary_dimm"):
        cfg.rotary_dimm
