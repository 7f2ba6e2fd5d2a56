r"""Spectral density families :math:`g_\theta`, one density per head, and their registry by name.

Each family learns :math:`g_\theta` and reads it out at the layer's frequencies as importance
weights :math:`a_r = g_\theta(\xi_r)/p(\xi_r)`. Widths are bounded by the proposal's
(:math:`\sigma \le s`), so the weights stay bounded and the estimator's variance with them.

This package's ``__init__`` holds the registry :data:`SPECTRA` and :func:`make_spectrum`; each
family lives in a module of its own (:mod:`~flt3d.nn.densities.gaussian`,
:mod:`~flt3d.nn.densities.laplace`, :mod:`~flt3d.nn.densities.local`,
:mod:`~flt3d.nn.densities.mlp`, :mod:`~flt3d.nn.densities.shells`,
:mod:`~flt3d.nn.densities.coulomb`).
"""

from __future__ import annotations

from flt3d.nn.densities.coulomb import CoulombKernel
from flt3d.nn.densities.gaussian import GaussianKernel, GaussianMixture, IsotropicMixture
from flt3d.nn.densities.laplace import LaplaceKernel
from flt3d.nn.densities.local import LocalRPE
from flt3d.nn.densities.mlp import MLPSpectrum
from flt3d.nn.densities.shells import RadialBasis, RadialMixture
from flt3d.nn.spectrum import Spectrum

__all__ = [
    "GaussianMixture",
    "IsotropicMixture",
    "GaussianKernel",
    "LaplaceKernel",
    "LocalRPE",
    "MLPSpectrum",
    "RadialMixture",
    "CoulombKernel",
    "RadialBasis",
    "SPECTRA",
    "make_spectrum",
]

SPECTRA: dict[str, type[Spectrum]] = {
    "gaussian_mixture": GaussianMixture,
    "isotropic_mixture": IsotropicMixture,
    "gaussian": GaussianKernel,
    "laplace": LaplaceKernel,
    "local": LocalRPE,
    "mlp": MLPSpectrum,
    "radial_mixture": RadialMixture,
    "radial_basis": RadialBasis,
    "coulomb": CoulombKernel,
}


def make_spectrum(name: str | None, heads: int, pos_dim: int, **kwargs) -> Spectrum | None:
    """Build a spectral density by name (``None`` means no RPE).

    Args:
        name: one of :data:`SPECTRA` (``"gaussian_mixture"``, ``"isotropic_mixture"``,
            ``"gaussian"``, ``"laplace"``, ``"local"``, ``"mlp"``, ``"radial_mixture"``,
            ``"radial_basis"``, ``"coulomb"``) or ``None``.
        heads: number of heads.
        pos_dim: coordinate dimension.
        **kwargs: options of the chosen family.
    """
    if name is None:
        return None
    if name not in SPECTRA:
        raise ValueError(f"spectrum must be one of {sorted(SPECTRA)} or None, got {name!r}")
    return SPECTRA[name](heads, pos_dim, **kwargs)
