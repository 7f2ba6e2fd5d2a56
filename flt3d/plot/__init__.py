r"""Plots of what an FLT layer learned, of its random-feature error and of training runs.

Every function draws with matplotlib (``pip install 'flt3d[plot]'``), imported only when a
function is called, accepts ``ax=None`` (a new figure) or the axes to draw in, and returns the
``Figure``. Inputs may be an :class:`~flt3d.nn.FLTAttention`, an :class:`~flt3d.nn.FLTConv`, an
:class:`~flt3d.nn.FLTBlock`, a :class:`~flt3d.nn.Spectrum` or any model holding them (the
first FLT attention is used, or the one chosen by ``layer``).

The package holds one kind of figure per module: :mod:`~flt3d.plot.rpe` (learned RPE profiles
and spectra), :mod:`~flt3d.plot.convergence` (random-feature error) and
:mod:`~flt3d.plot.curves` (learning curves, predicted vs true); every public name is
re-exported here.

Example:
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from flt3d.nn import FLTConv
    >>> from flt3d.plot import rpe_profile
    >>> fig = rpe_profile(FLTConv(16, 16, heads=2, spectrum="isotropic_mixture"))
    >>> len(fig.axes[0].lines)  # f-hat and the R -> infinity limit for each head
    4
"""

from .convergence import feature_convergence
from .curves import learning_curve, predicted_vs_true
from .rpe import find_attention, is_isotropic, rpe_profile, spectrum

__all__ = [
    "rpe_profile",
    "spectrum",
    "feature_convergence",
    "learning_curve",
    "predicted_vs_true",
    "find_attention",
    "is_isotropic",
]
