"""Plots the labs share. Each returns the matplotlib Axes so a lab can add to it."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator


def plot_curves(x, curves: dict, *, xlabel: str, ylabel: str, title: str = "", ax=None,
                logy: bool = False, marker: str = "o"):
    """One line per entry of ``curves`` (label -> y values over ``x``).

    Infinite or missing values (None, inf, nan) are left out of a line rather than drawn,
    and the legend says how many points were left out, so nothing is hidden silently.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4))
    for label, ys in curves.items():
        pts = [(a, b) for a, b in zip(x, ys) if b is not None and math.isfinite(b)]
        dropped = len(list(x)) - len(pts)
        if dropped:
            label = f"{label} ({dropped} infinite, not drawn)"
        if pts:
            ax.plot(*zip(*pts), marker=marker, label=label)
        else:
            ax.plot([], [], label=label)
    if all(float(a).is_integer() for a in x):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # n = 1, 2, 3 ... not 2.5
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def _as_array(values):
    """A float NumPy array from a tensor (any device, with or without grad), array or list."""
    return np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=float)


def _show_char(ch: str) -> str:
    """A visible stand-in for characters that print as nothing: newline, space, tab."""
    return {"\n": "\u23ce", " ": "\u2423", "\t": "\u21e5"}.get(ch, ch)


def plot_gate_heatmap(values, text: str, *, units=None, unit_labels=None, title: str = "",
                      ax=None, cmap: str = "RdBu_r", vmin: float | None = None,
                      vmax: float | None = None, colorbar: bool = True):
    """Activations of some units while a model reads a text: a (units x characters) heatmap.

    values: (T, H) array or tensor, one gate or state per character (e.g. an entry of
    ``RecurrentLM.trace``); text: the T characters read (newline drawn as a return sign,
    space as an open box). units: the columns of ``values`` to show, one row each (default:
    all); unit_labels: the row labels (default "unit k"). vmin/vmax: the colour range
    (default: the range of the values shown).
    """
    values = _as_array(values)
    if values.ndim != 2 or values.shape[0] != len(text):
        raise ValueError(f"values must be (T, H) with T = len(text) = {len(text)}, got {values.shape}")
    units = list(range(values.shape[1])) if units is None else list(units)
    rows = values[:, units].T                                   # (units, T)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(6.0, 0.16 * len(text)), 0.5 + 0.4 * len(units)))
    im = ax.imshow(rows, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks(range(len(text)))
    ax.set_xticklabels([_show_char(c) for c in text], fontsize=7, fontfamily="monospace")
    ax.tick_params(axis="x", length=0)
    ax.set_yticks(range(len(units)))
    ax.set_yticklabels(unit_labels if unit_labels is not None else [f"unit {u}" for u in units], fontsize=8)
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
    return ax


def gate_html(text: str, values, *, vmin: float = 0.0, vmax: float = 1.0, cmap: str = "RdBu_r") -> str:
    """The text as HTML, each character's background coloured by one unit's activation.

    values: (T,) one number per character (e.g. ``trace["f"][:, unit]``); colours from
    ``cmap`` over [vmin, vmax]. Each character's value shows as a tooltip. For a widget
    (``ipywidgets.HTML(value=gate_html(...))``) or ``IPython.display.HTML``.
    """
    import html

    from matplotlib import colormaps
    from matplotlib.colors import Normalize, to_hex

    values = _as_array(values).reshape(-1)
    if len(values) != len(text):
        raise ValueError(f"need one value per character: {len(values)} values, {len(text)} characters")
    colour, norm = colormaps[cmap], Normalize(vmin=vmin, vmax=vmax, clip=True)
    spans = []
    for ch, v in zip(text, values):
        shown = "\u23ce" if ch == "\n" else html.escape(ch)
        spans.append(f'<span title="{v:.3f}" style="background:{to_hex(colour(norm(v)))}">{shown}</span>'
                     + ("<br>" if ch == "\n" else ""))
    return ('<div style="font-family:monospace;white-space:pre-wrap;line-height:1.6;color:#111">'
            + "".join(spans) + "</div>")


def _show_token(token: str) -> str:
    """A token as a reader expects it: without the "▁" space mark of seqlab's tokenizers."""
    return token.replace("\u2581", "") or token


def plot_attention(weights, x_labels, y_labels, ax=None, title: str | None = None,
                   cmap: str = "Greys", colorbar: bool = True):
    """Attention (alignment) weights as a heatmap: one row per output token, one column per input token.

    weights: (T_out, T_in) array or tensor, row t = where output token t looked (e.g. a
    sentence's weights from ``seqlab.generate.greedy_decode(..., return_attention=True)``);
    x_labels: the T_in input (source) tokens, on the x axis; y_labels: the T_out output
    tokens, on the y axis. "▁" space marks are stripped for display. The colour scale is
    fixed to [0, 1], the range of a softmax weight, so heatmaps compare across sentences.
    """
    weights = _as_array(weights)
    if weights.ndim != 2:
        raise ValueError(f"weights must be a (T_out, T_in) matrix, got shape {weights.shape}")
    T_out, T_in = weights.shape
    if len(x_labels) != T_in or len(y_labels) != T_out:
        raise ValueError(f"weights are (T_out, T_in) = {weights.shape}: need {T_in} x_labels (inputs) "
                         f"and {T_out} y_labels (outputs), got {len(x_labels)} and {len(y_labels)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 + 0.32 * max(T_in, 6), 0.8 + 0.3 * max(T_out, 6)))
    im = ax.imshow(weights, cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(T_in))
    ax.set_xticklabels([_show_token(t) for t in x_labels], rotation=60, ha="right",
                       rotation_mode="anchor", fontsize=8)
    ax.set_yticks(range(T_out))
    ax.set_yticklabels([_show_token(t) for t in y_labels], fontsize=8)
    ax.tick_params(length=0)
    ax.set_xlabel("input (source)")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title, fontsize=10)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    return ax
