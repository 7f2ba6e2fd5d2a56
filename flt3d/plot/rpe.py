r"""The learned RPE of an FLT layer: find its attention, draw :math:`\hat f` and its spectrum.

:func:`find_attention` picks an :class:`~flt3d.nn.FLTAttention` (or a
:class:`~flt3d.nn.Spectrum`) out of a model; :func:`rpe_profile` draws each head's
:math:`\hat f(\Delta)` and its :math:`R\to\infty` limit, :func:`spectrum` the spectral density
:math:`g(\xi)` at the layer's frequencies; :func:`is_isotropic` says which families are radial.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from flt3d.nn.densities import LaplaceKernel, LocalRPE
from flt3d.nn.flt_attention import FLTAttention
from flt3d.nn.spectrum import Spectrum

from ._common import _colors, _new_axes

__all__ = ["find_attention", "is_isotropic", "rpe_profile", "spectrum"]

_POINTS = 201


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
