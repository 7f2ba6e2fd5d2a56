r"""Plots of what an FLT layer learned, of its random-feature error and of training runs.

Every function draws with matplotlib (``pip install 'flt3d[plot]'``), imported only when a
function is called, accepts ``ax=None`` (a new figure) or the axes to draw in, and returns the
``Figure``. Inputs may be an :class:`~flt3d.nn.FLTAttention`, an :class:`~flt3d.nn.FLTConv`, an
:class:`~flt3d.nn.FLTBlock`, a :class:`~flt3d.nn.Spectrum` or any model holding them (the
first FLT attention is used, or the one chosen by ``layer``).

Example:
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from flt3d.nn import FLTConv
    >>> from flt3d.plot import rpe_profile
    >>> fig = rpe_profile(FLTConv(16, 16, heads=2, spectrum="isotropic_mixture"))
    >>> len(fig.axes[0].lines)  # f-hat and the R -> infinity limit for each head
    4
"""

from __future__ import annotations

import copy
import csv
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from flt3d.nn.densities import LaplaceKernel, LocalRPE
from flt3d.nn.flt_attention import FLTAttention
from flt3d.nn.random_features import orthogonal_gaussian
from flt3d.nn.spectrum import Spectrum

__all__ = [
    "rpe_profile",
    "spectrum",
    "feature_convergence",
    "learning_curve",
    "predicted_vs_true",
    "find_attention",
    "is_isotropic",
]

_POINTS = 201
_NOT_METRICS = {"epoch", "step", "time", "wall_time"}


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


def find_attention(module: nn.Module, layer: int = 0) -> FLTAttention | Spectrum:
    """The ``layer``-th :class:`~flt3d.nn.FLTAttention` in ``module`` (or the module itself).

    A :class:`~flt3d.nn.Spectrum` or an :class:`~flt3d.nn.FLTAttention` is returned as is.

    Raises:
        ValueError: if ``module`` holds no FLT attention, or fewer than ``layer + 1``.
    """
    if isinstance(module, (Spectrum, FLTAttention)):
        return module
    found = [m for m in module.modules() if isinstance(m, FLTAttention)]
    if not found:
        raise ValueError(f"{type(module).__name__} holds no FLTAttention")
    if not -len(found) <= layer < len(found):
        raise ValueError(f"layer must be in [0, {len(found)}), got {layer}")
    return found[layer]


def _rpe_functions(module: nn.Module, layer: int):
    """``(spectrum, f_hat, f_limit)``: the layer's applied RPE and its R -> infinity limit."""
    found = find_attention(module, layer)
    if isinstance(found, Spectrum):
        return found, found, found.limit
    if found.spectrum is None:
        raise ValueError("this FLTAttention has no spectral RPE (spectrum=None)")
    spec = found.spectrum
    if found.mask == "mul":
        return spec, found.rpe, lambda d: spec.limit(d) + found.mul_shift().to(d.dtype)
    return spec, found.rpe, spec.limit


def is_isotropic(spec: Spectrum) -> bool:
    """Whether the family's :math:`f` depends on :math:`\\lVert\\Delta\\rVert` only."""
    return bool(getattr(spec, "isotropic", False)) or isinstance(spec, LaplaceKernel)


def _heads(heads: Iterable[int] | None, total: int) -> list[int]:
    chosen = list(range(total)) if heads is None else [int(h) for h in heads]
    if not chosen or any(not 0 <= h < total for h in chosen):
        raise ValueError(f"heads must be indices in [0, {total}), got {heads}")
    return chosen


def _default_distance(spec: Spectrum) -> float:
    if isinstance(spec, LocalRPE):
        return 2.0 * float(spec.radius.max()) + 2.0 * spec.length_scale
    return 10.0 * spec.length_scale


def _colors(n: int) -> list:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if n <= 10 else "viridis")
    return [cmap(i if n <= 10 else i / max(n - 1, 1)) for i in range(n)]


@torch.no_grad()
def rpe_profile(
    module: nn.Module,
    *,
    max_distance: float | None = None,
    heads: Iterable[int] | None = None,
    ax=None,
    limit: bool = True,
    layer: int = 0,
):
    r"""Each head's learned RPE: :math:`\hat f(\Delta)` (solid) and its limit :math:`f` (dashed).

    :math:`\hat f` is what the layer applies, over its own ``R`` frequencies (for the ``mul``
    mask including its positive shift :math:`c`, which is then added to the limit as well);
    :math:`f` is the :math:`R\to\infty` limit (closed form, or a large Monte Carlo sum).

    - 1D coordinates: one panel against :math:`\Delta \in [-L, L]`.
    - Isotropic spectra in 2D/3D: one panel against :math:`\lVert\Delta\rVert \in [0, L]`;
      :math:`\hat f` is averaged over the ``D`` coordinate axes (a finite draw is isotropic
      only in expectation), :math:`f` is exactly radial.
    - Anisotropic spectra: ``D`` panels, slices along each coordinate axis over ``[-L, L]``.

    Args:
        module: FLT attention, conv, block, spectrum, or a model containing them.
        max_distance: ``L`` in coordinate units (default: ten length scales; for the local
            RPE twice the largest radius plus two length scales).
        heads: head indices to draw (default all).
        ax: axes to draw in, one per panel (default a new figure).
        limit: also draw the limit :math:`f` (default ``True``).
        layer: which FLT attention of ``module`` (default ``0``, the first).

    Returns:
        The figure. Lines of head ``h`` are labelled ``"head h"`` (the limit's ``"_"``-prefixed,
        so legends list each head once).
    """
    spec, f_hat, f_lim = _rpe_functions(module, layer)
    chosen = _heads(heads, spec.heads)
    length = float(max_distance) if max_distance is not None else _default_distance(spec)
    if not length > 0:
        raise ValueError(f"max_distance must be positive, got {max_distance}")
    dim = spec.pos_dim
    radial = dim > 1 and is_isotropic(spec)
    panels = 1 if dim == 1 or radial else dim
    fig, axes = _new_axes(ax, panels)
    ref = spec.frequencies
    t = torch.linspace(0.0 if radial else -length, length, _POINTS, dtype=ref.dtype)
    eye = torch.eye(dim, dtype=ref.dtype)
    colors = _colors(spec.heads)
    for p, axis in enumerate(axes):
        if radial:
            slices = t.view(1, -1, 1) * eye.view(dim, 1, dim)  # [D, T, D]
            y_hat = f_hat(slices.to(ref.device)).mean(0)
            y_lim = f_lim(slices[0].to(ref.device)) if limit else None
            xlabel = r"$|\Delta|$"
        else:
            delta = t.view(-1, 1) * eye[p].view(1, dim)
            y_hat = f_hat(delta.to(ref.device))
            y_lim = f_lim(delta.to(ref.device)) if limit else None
            xlabel = r"$\Delta$" if dim == 1 else rf"$\Delta_{p + 1}$ (other axes 0)"
        x = t.numpy()
        for h in chosen:
            axis.plot(x, y_hat[:, h].cpu().numpy(), color=colors[h], label=f"head {h}")
            if y_lim is not None:
                axis.plot(x, y_lim[:, h].cpu().numpy(), "--", color=colors[h], label=f"_head {h}")
        axis.set_xlabel(xlabel)
        axis.set_ylabel(r"$f(\Delta)$")
    axes[0].set_title(
        rf"learned RPE: $\hat f$ (R = {spec.num_frequencies})"
        + (r", dashed: $R\to\infty$" if limit else "")
    )
    axes[-1].legend(fontsize="small", ncol=2 if len(chosen) > 4 else 1)
    return fig


def _density(spec: Spectrum, xi: Tensor) -> Tensor:
    """Even part of :math:`g(\\xi) = a(\\xi)\\,p(\\xi)` at ``xi [H, R, D]``, ``[H, R]``."""
    a, _ = spec.weights(xi)
    return a * spec.log_proposal(xi).exp()


@torch.no_grad()
def spectrum(module: nn.Module, *, heads: Iterable[int] | None = None, ax=None, layer: int = 0):
    r"""The learned spectral density :math:`g(\xi)` of each head against :math:`\lVert\xi\rVert`.

    Dots: the layer's own frequencies :math:`\xi_r` at height :math:`g(\xi_r) = a_r\,p(\xi_r)`
    (the even part; the estimator multiplies by the importance weight :math:`a_r`). Line: the
    density along a ray, drawn where it is a function of :math:`\lVert\xi\rVert` alone
    (isotropic families) or of :math:`\xi` itself (1D coordinates, signed axis). The y axis
    is logarithmic when every dot is positive.

    Args:
        module: FLT attention, conv, block, spectrum, or a model containing them.
        heads: head indices to draw (default all).
        ax: axes to draw in (default a new figure).
        layer: which FLT attention of ``module`` (default ``0``).

    Returns:
        The figure: one scatter collection per head (labelled ``"head h"``) and, where drawn,
        one curve per head.
    """
    found = find_attention(module, layer)
    spec = found if isinstance(found, Spectrum) else found.spectrum
    if spec is None:
        raise ValueError("this FLTAttention has no spectral RPE (spectrum=None)")
    chosen = _heads(heads, spec.heads)
    fig, (axis,) = _new_axes(ax, 1)
    dim, xi = spec.pos_dim, spec.frequencies
    g = _density(spec, xi).cpu()
    coord = (xi[..., 0] if dim == 1 else xi.norm(dim=-1)).cpu()
    colors = _colors(spec.heads)
    curve = dim == 1 or is_isotropic(spec)
    if curve:
        top = 1.05 * max(float(coord.abs().max()), 3.0 * spec.proposal_scale)
        t = torch.linspace(-top if dim == 1 else 0.0, top, _POINTS, dtype=xi.dtype)
        ray = torch.zeros(spec.heads, _POINTS, dim, dtype=xi.dtype)
        ray[..., 0] = t
        g_ray = _density(spec, ray.to(xi.device)).cpu()
    for h in chosen:
        axis.scatter(coord[h].numpy(), g[h].numpy(), s=14, color=colors[h], label=f"head {h}")
        if curve:
            axis.plot(t.numpy(), g_ray[h].numpy(), color=colors[h], lw=1.0, alpha=0.7)
    if bool((g[chosen] > 0).all()):
        axis.set_yscale("log")
    axis.set_xlabel(r"$\xi$" if dim == 1 else r"$|\xi|$")
    axis.set_ylabel(r"$g(\xi)$")
    axis.set_title(f"spectral density, {spec.num_frequencies} frequencies per head")
    axis.legend(fontsize="small", ncol=2 if len(chosen) > 4 else 1)
    return fig


def _with_features(att: FLTAttention, m: int) -> FLTAttention:
    """A copy of ``att`` with ``m`` random features (same spectrum and frequencies)."""
    new = copy.deepcopy(att)
    new.num_features = m
    new.projection = orthogonal_gaussian(
        att.heads, m, att.feature_dim, dtype=att.projection.dtype, device=att.projection.device
    )
    return new


@torch.no_grad()
def feature_convergence(
    module_or_attention: nn.Module,
    *,
    features: Sequence[int] = (8, 16, 32, 64, 128, 256),
    repeats: int = 8,
    inputs: tuple[Tensor, ...] | None = None,
    num_tokens: int = 32,
    seed: int = 0,
    ax=None,
    layer: int = 0,
):
    r"""Linear-vs-exact output RMSE of an FLT attention against the number of random features.

    For each ``m`` in ``features``, ``repeats`` independent draws of the random features are
    compared with exact attention on the same inputs (same RPE :math:`\hat f`):
    :math:`\mathrm{RMSE} = \sqrt{\mathrm{mean}(\mathrm{out}_{lin} - \mathrm{out}_{exact})^2}`.
    Log-log axes, mean and spread over draws, and a dotted :math:`m^{-1/2}` reference line
    through the first point. The module itself is not changed.

    Args:
        module_or_attention: FLT attention, conv, block or a model containing them.
        features: numbers of random features ``m`` (default ``(8, ..., 256)``).
        repeats: draws per ``m`` (default ``8``).
        inputs: ``(q, k, v, pos)`` or ``(q, k, v, pos, batch)`` for the attention (default:
            one random graph of ``num_tokens`` tokens, ``q, k ~ N(0, 0.5^2)`` (larger logits
            need many more features, FAVOR+'s variance grows as :math:`e^{|q|^2 + |k|^2}`),
            ``v ~ N(0, 1)``, coordinates
            :math:`\mathcal{N}(0, (2\ell)^2)` with :math:`\ell` the RPE length scale).
        num_tokens: tokens of the random graph (default ``32``).
        seed: seed of the random inputs and draws (default ``0``).
        ax: axes to draw in (default a new figure).
        layer: which FLT attention of ``module_or_attention`` (default ``0``).

    Returns:
        The figure; its first line holds ``(features, mean RMSE)``.
    """
    att = find_attention(module_or_attention, layer)
    if not isinstance(att, FLTAttention):
        raise ValueError("feature_convergence needs an FLTAttention (or a module holding one)")
    if repeats < 1 or not features or any(int(m) < 1 for m in features):
        raise ValueError(f"need repeats >= 1 and positive features, got {repeats}, {features}")
    gen = torch.Generator().manual_seed(seed)
    ref = att.projection
    if inputs is None:
        scale = 2.0 * (att.spectrum.length_scale if att.spectrum is not None else 1.0)
        shape = (num_tokens, att.heads, att.head_channels)
        q, k, v = (torch.randn(shape, generator=gen, dtype=ref.dtype) for _ in range(3))
        q, k = 0.5 * q, 0.5 * k
        pos = scale * torch.randn(num_tokens, att.pos_dim, generator=gen, dtype=ref.dtype)
        inputs = tuple(t.to(ref.device) for t in (q, k, v, pos))
    exact = copy.deepcopy(att)
    exact.attention = "exact"
    target = exact(*inputs)
    means, spreads = [], []
    for m in features:
        probe = _with_features(att, int(m))
        probe.attention = "linear"
        errors = []
        for _ in range(repeats):
            probe.redraw_features(generator=gen)
            errors.append(float((probe(*inputs) - target).pow(2).mean().sqrt()))
        err = torch.tensor(errors, dtype=torch.float64)
        means.append(float(err.mean()))
        spreads.append(float(err.std()) if repeats > 1 else 0.0)
    fig, (axis,) = _new_axes(ax, 1)
    ms = [int(m) for m in features]
    axis.errorbar(ms, means, yerr=spreads, marker="o", capsize=3, label="linear vs exact")
    ref_line = [means[0] * math.sqrt(ms[0] / m) for m in ms]
    axis.plot(ms, ref_line, ":", color="0.4", label=r"$\propto m^{-1/2}$")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("random features $m$")
    axis.set_ylabel("output RMSE")
    axis.set_title(f"linear → exact, {repeats} draws per $m$")
    axis.legend(fontsize="small")
    return fig


def _read_metrics(source) -> dict[str, list[float]]:
    """Columns of a metrics table as lists of floats (NaN for empty cells)."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, newline="") as fh:
            rows = list(csv.DictReader(fh))
        columns = {name: [row[name] for row in rows] for name in (rows[0] if rows else {})}
    elif hasattr(source, "columns") and hasattr(source, "__getitem__"):  # a DataFrame
        columns = {str(c): list(source[c]) for c in source.columns}
    elif isinstance(source, Mapping):
        columns = {str(c): list(v) for c, v in source.items()}
    else:
        raise ValueError(
            f"expected a CSV path, a DataFrame or a dict of columns, got {type(source).__name__}"
        )

    def number(value) -> float:
        try:
            return float(value)
        except (TypeError, ValueError):
            return math.nan

    return {name: [number(v) for v in values] for name, values in columns.items()}


def learning_curve(
    metrics,
    *,
    keys: Sequence[str] | None = None,
    x: str | None = None,
    logy: bool | None = None,
    ax=None,
):
    """Metrics of a training run against step (or epoch), e.g. Lightning's ``metrics.csv``.

    Args:
        metrics: path of a CSV file (Lightning's ``CSVLogger`` writes ``metrics.csv``), a
            ``pandas.DataFrame`` or a dict of columns.
        keys: columns to draw (default every numeric column but ``epoch``, ``step``, learning
            rates (``lr*``) and ``test*`` metrics).
        x: column of the x axis (default ``"step"`` if present, else ``"epoch"``, else the row).
        logy: log y axis (default: when every drawn value is positive and they span more
            than a factor of ten).
        ax: axes to draw in (default a new figure).

    Returns:
        The figure, one line per key (labelled with the key), empty cells skipped.
    """
    columns = _read_metrics(metrics)
    if x is None:
        x = next((c for c in ("step", "epoch") if c in columns), None)
    if x is not None and x not in columns:
        raise ValueError(f"no column {x!r}; columns are {sorted(columns)}")
    if keys is None:
        keys = [
            c
            for c, vals in columns.items()
            if c not in _NOT_METRICS
            and c != x
            and not c.startswith(("lr", "test"))
            and any(math.isfinite(v) for v in vals)
        ]
    missing = [k for k in keys if k not in columns]
    if missing or not keys:
        raise ValueError(
            f"no metric columns {missing or ''} to draw; columns are {sorted(columns)}"
        )
    fig, (axis,) = _new_axes(ax, 1)
    n = len(next(iter(columns.values())))
    xs = columns[x] if x is not None else list(range(n))
    drawn = []
    for key in keys:
        pts = [(a, b) for a, b in zip(xs, columns[key]) if math.isfinite(a) and math.isfinite(b)]
        if not pts:
            continue
        axis.plot(*zip(*pts), marker="." if len(pts) < 30 else None, label=key)
        drawn.extend(b for _, b in pts)
    if logy is None:
        logy = bool(drawn) and min(drawn) > 0 and max(drawn) > 10 * min(drawn)
    if logy:
        axis.set_yscale("log")
    axis.set_xlabel(x or "row")
    axis.set_ylabel("value")
    axis.set_title("learning curve")
    axis.legend(fontsize="small")
    return fig


def predicted_vs_true(
    pred,
    true,
    *,
    unit: str | None = None,
    name: str | None = None,
    ax=None,
):
    """Scatter of predictions against targets, with the diagonal and the MAE in the title.

    Args:
        pred: predictions, any shape (flattened), tensor, array or list.
        true: targets, the same number of values.
        unit: unit for the axis labels and the MAE (default none).
        name: quantity name for the labels (default ``"value"``).
        ax: axes to draw in (default a new figure).

    Returns:
        The figure: one scatter collection and one diagonal line.
    """
    p = torch.as_tensor(pred, dtype=torch.float64).detach().cpu().flatten()
    t = torch.as_tensor(true, dtype=torch.float64).detach().cpu().flatten()
    if p.numel() != t.numel() or p.numel() == 0:
        raise ValueError(
            f"pred and true must hold the same, non-zero number of values, got "
            f"{p.numel()} and {t.numel()}"
        )
    fig, (axis,) = _new_axes(ax, 1)
    suffix = f" [{unit}]" if unit else ""
    name = name or "value"
    axis.scatter(t.numpy(), p.numpy(), s=10, alpha=0.6)
    lo, hi = float(torch.minimum(p.min(), t.min())), float(torch.maximum(p.max(), t.max()))
    axis.plot([lo, hi], [lo, hi], "--", color="0.4", lw=1.0)
    mae = float((p - t).abs().mean())
    axis.set_xlabel(f"true {name}{suffix}")
    axis.set_ylabel(f"predicted {name}{suffix}")
    axis.set_title(f"MAE = {mae:.4g}{' ' + unit if unit else ''} ({p.numel()} samples)")
    axis.set_aspect("equal", adjustable="datalim")
    return fig
