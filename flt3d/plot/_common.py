"""What every plot of :mod:`flt3d.plot` shares: matplotlib's pyplot, new or given axes, colours.

matplotlib is imported only when a plot asks for it (:func:`_pyplot`), so ``flt3d.plot`` loads
without the ``plot`` extra.
"""

from __future__ import annotations

from typing import Any


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError(
            "flt3d.plot needs matplotlib; install it with: pip install 'flt3d[plot]'"
        ) from err
    return plt


def _new_axes(ax, panels: int = 1) -> tuple[Any, list]:
    """``(figure, [axes])``: new side-by-side axes, or the given ones."""
    if ax is None:
        plt = _pyplot()
        fig, axes = plt.subplots(
            1, panels, figsize=(4.8 * panels, 3.6), squeeze=False, layout="constrained"
        )
        return fig, list(axes[0])
    if hasattr(ax, "flat"):  # an array of axes from plt.subplots
        axes = list(ax.flat)
    else:
        axes = list(ax) if isinstance(ax, (list, tuple)) else [ax]
    if len(axes) != panels:
        raise ValueError(f"this plot needs {panels} axes, got {len(axes)}")
    return axes[0].figure, axes


def _colors(n: int) -> list:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if n <= 10 else "viridis")
    return [cmap(i if n <= 10 else i / max(n - 1, 1)) for i in range(n)]
