"""Plots the labs share. Each returns the matplotlib Axes so a lab can add to it."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
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
