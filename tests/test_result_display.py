"""Issue 34, notebook display: an analysis result as the last line of a Jupyter cell shows a short repr and a
rich view (headline table and plot), like pandas and scikit-learn objects, never a dump of its tensors; rows go to
pandas; a user's own result class needs no ``plot`` to instantiate, display and save."""
import base64
import builtins
import re
from html import escape
from dataclasses import dataclass

import pytest
import torch

import analyses
from analyses.result import AnalysisResult, headline
from plm_interp import HookedPLM, preset_config
from tasks.cfg import CFGTask


@pytest.fixture(scope="module")
def boundary():
    task = CFGTask("demo")
    model = HookedPLM(preset_config("tiny", d_vocab=task.d_vocab, n_ctx=96, positional="rot", seed=0,
                                    task=task.spec()))
    return analyses.attention_boundary(model, n=4, max_offset=20, progress=False)


def _png_in(text: str) -> bytes:
    match = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text)
    assert match, "no inline PNG"
    return base64.b64decode(match.group(1))


def test_a_real_result_has_a_short_repr_and_rich_views(boundary):
    text = repr(boundary)
    assert len(text) < 300 and "tensor" not in text and text.startswith("AttentionBoundaryResult(")
    html = boundary._repr_html_()
    assert _png_in(html).startswith(b"\x89PNG")
    for h in boundary.headlines():  # the headline table: figure, control, majority, n, verdict
        assert escape(h["metric"]) in html and escape(h["verdict"]) in html and f"<td>{h['n']}</td>" in html
    md = boundary._repr_markdown_()
    assert "| figure | value | spread | control | majority | n | verdict |" in md
    assert _png_in(md).startswith(b"\x89PNG")
    assert "tensor(" not in html + md


def test_jupyter_picks_the_rich_views():
    IPython = pytest.importorskip("IPython")
    from IPython.core.formatters import DisplayFormatter

    @dataclass
    class Small(AnalysisResult):
        acc: torch.Tensor

        def rows(self):
            return [{"layer": i, "acc": float(a)} for i, a in enumerate(self.acc)]

    data, _ = DisplayFormatter().format(Small(torch.rand(3)))
    assert {"text/plain", "text/html", "text/markdown"} <= set(data)
    assert data["text/plain"] == "Small(3 rows: layer, acc)"


def test_to_pandas_gives_the_rows_and_headlines(boundary):
    pd = pytest.importorskip("pandas")
    df = boundary.to_pandas()
    assert isinstance(df, pd.DataFrame)
    pd.testing.assert_frame_equal(df, pd.DataFrame(boundary.rows()))
    assert list(boundary.to_pandas("headlines")["metric"]) == [h["metric"] for h in boundary.headlines()]
    with pytest.raises(ValueError, match="which"):
        boundary.to_pandas("plots")


def test_to_pandas_without_pandas_says_what_to_install(boundary, monkeypatch):
    real_import = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name == "pandas":
            raise ImportError("No module named 'pandas'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    with pytest.raises(ImportError, match="pip install pandas.*rows"):
        boundary.to_pandas()


def test_a_user_result_without_plot_instantiates_displays_and_saves(tmp_path):
    @dataclass
    class Mine(AnalysisResult):
        weights: torch.Tensor

        def rows(self):
            return [{"i": i, "w": float(v)} for i, v in enumerate(self.weights)]

        def headlines(self):
            return [headline("probe acc", 0.9, 200, control=0.5, majority=0.4)]

    result = Mine(torch.rand(1000))
    assert len(repr(result)) < 200
    html = result._repr_html_()
    assert "probe acc" in html and _png_in(html).startswith(b"\x89PNG")
    assert "more rows" in html  # long tables are cut in the view; to_pandas() has them all
    result.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png", "result.json", "table.md"]


def test_a_plot_that_fails_still_shows_the_table():
    @dataclass
    class Broken(AnalysisResult):
        x: int

        def rows(self):
            return [{"x": self.x}]

        def plot(self):
            raise RuntimeError("no figure today")

    html = Broken(3)._repr_html_()
    assert "no figure today" in html and "<td>3</td>" in html


def test_a_subclass_with_its_own_repr_keeps_it():
    @dataclass
    class Custom(AnalysisResult):
        def rows(self):
            return []

        def __repr__(self):
            return "custom"

    assert repr(Custom()) == "custom"
