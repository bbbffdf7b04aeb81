"""One registry of positional schemes (issue 15 item 2): each scheme module carries its name, TL name, config
checks and residual embedding; a new scheme is one file."""
import textwrap

from plm_interp import POSITIONAL_SCHEMES, HookedPLM, PLMConfig
from plm_interp.model.positional import SCHEMES, scheme_names


def test_the_registry_is_the_one_list_of_schemes():
    assert POSITIONAL_SCHEMES == scheme_names() == ("abs", "rot", "rel", "pos", "uni", "none")
    tl = {name: SCHEMES[name].tl_name for name in POSITIONAL_SCHEMES}
    assert tl == {"abs": "standard", "rot": "rotary", "rel": "relative", "pos": "position_only",
                  "uni": "uniform", "none": "none"}
    for name in POSITIONAL_SCHEMES:
        cfg = PLMConfig(d_model=16, n_layers=1, n_heads=2, d_vocab=5, n_ctx=8, positional=name)
        assert cfg.positional_embedding_type == tl[name]
        assert (HookedPLM(cfg).pos_embed is not None) == (name == "abs")


def test_a_new_scheme_is_one_file(tmp_path, monkeypatch):
    """Drop a module into the package: the config accepts its name, validates with it and builds with it."""
    import plm_interp.model.positional as package

    source = textwrap.dedent('''
        from plm_interp.model.positional.base import AttentionPositional

        class HalfScale(AttentionPositional):
            name, tl_name = "half", "half_scale"

            @classmethod
            def validate(cls, cfg):
                from plm_interp.config import ConfigError
                if cfg.n_heads != 2:
                    raise ConfigError("config field 'n_heads' must be 2 for half")

            def __init__(self, cfg):
                super().__init__(cfg)
                self.scale = self.scale / 2
    ''')
    path = tmp_path / "half_scale.py"
    path.write_text(source)
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(tmp_path)])
    import importlib.util

    spec = importlib.util.spec_from_file_location("plm_interp.model.positional.half_scale", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # what the package's import loop does for a file in it
    try:
        assert "half" in scheme_names()
        cfg = PLMConfig(d_model=16, n_layers=1, n_heads=2, d_vocab=5, n_ctx=8, positional="half")
        assert cfg.positional_embedding_type == "half_scale"
        model = HookedPLM(cfg)
        assert model.blocks[0].attn.positional.scale == 0.5 * 8**-0.5
        try:
            PLMConfig(d_model=16, n_layers=1, n_heads=4, d_vocab=5, n_ctx=8, positional="half")
            raise AssertionError("the scheme's own validation did not run")
        except ValueError as err:
            assert "n_heads" in str(err)
    finally:
        SCHEMES.pop("half")
