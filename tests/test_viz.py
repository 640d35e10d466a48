"""seqlab.viz: the shared plots draw what they are given and refuse mismatched input."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from seqlab import viz  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_plot_curves_leaves_out_infinite_points_and_says_so():
    ax = viz.plot_curves([1, 2, 3], {"a": [1.0, math.inf, 3.0], "b": [1.0, 2.0, 3.0]},
                         xlabel="n", ylabel="bpc")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["a (1 infinite, not drawn)", "b"]
    assert len(ax.lines[0].get_xdata()) == 2


def test_gate_heatmap_rows_are_the_chosen_units():
    values = torch.arange(12.0).reshape(4, 3)             # T=4 characters, H=3 units
    ax = viz.plot_gate_heatmap(values, "ab\n ", units=[2, 0], colorbar=False)
    shown = ax.images[0].get_array()
    assert np.array_equal(np.asarray(shown), values[:, [2, 0]].T.numpy())
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["a", "b", "\u23ce", "\u2423"]          # newline and space are made visible
    assert [t.get_text() for t in ax.get_yticklabels()] == ["unit 2", "unit 0"]


def test_gate_heatmap_refuses_a_text_of_the_wrong_length():
    with pytest.raises(ValueError, match="len\\(text\\) = 3"):
        viz.plot_gate_heatmap(np.zeros((4, 2)), "abc")


def test_gate_html_colours_each_character_by_its_value():
    page = viz.gate_html("a<\n", [0.0, 1.0, 0.5])
    assert page.count("<span") == 3
    assert "&lt;" in page and "<br>" in page                 # escaped, line break kept
    assert 'title="0.000"' in page and 'title="1.000"' in page
    colours = [part.split(")")[0] for part in page.split("background:")[1:]]
    assert len(set(colours)) == 3                           # low, high and middle differ
    with pytest.raises(ValueError, match="one value per character"):
        viz.gate_html("ab", [0.1])


def test_plot_attention_shows_the_weights_with_token_labels():
    w = torch.softmax(torch.randn(3, 4), dim=-1)              # 3 output tokens over 4 source tokens
    ax = viz.plot_attention(w, ["\u2581Ein", "\u2581Hund", ".", "<eos>"], ["\u2581A", "\u2581dog", "."], title="t")
    assert np.array_equal(np.asarray(ax.images[0].get_array()), w.numpy().astype(float))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Ein", "Hund", ".", "<eos>"]   # "▁" stripped
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A", "dog", "."]
    assert ax.images[0].get_clim() == (0.0, 1.0) and ax.get_title() == "t"
    assert len(ax.figure.axes) == 2                          # the heatmap and its colorbar


def test_plot_attention_refuses_labels_that_do_not_match_the_matrix():
    with pytest.raises(ValueError, match="need 4 x_labels .* and 3 y_labels"):
        viz.plot_attention(np.zeros((3, 4)), ["a", "b", "c"], ["x", "y", "z"])
    with pytest.raises(ValueError, match="need 4 x_labels .* and 3 y_labels"):
        viz.plot_attention(np.zeros((3, 4)), ["a", "b", "c", "d"], ["x", "y"])
    with pytest.raises(ValueError, match="matrix"):
        viz.plot_attention(np.zeros(4), ["a"] * 4, ["x"])
