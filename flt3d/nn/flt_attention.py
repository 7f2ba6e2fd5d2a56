"""FLTAttention: multi-head attention with a learned spectral RPE, linear or exact."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flt3d.nn.attention import linear_attention, linear_attention_sums
from flt3d.nn.causal_attention import causal_linear_attention
from flt3d.nn.densities import make_spectrum
from flt3d.nn.flt_checks import check_inputs, check_options
from flt3d.nn.flt_exact import exact_forward
from flt3d.nn.flt_features import kernel_exponents, mul_factors, with_mul_factors
from flt3d.nn.flt_kernel import dense_weights
from flt3d.nn.flt_local import local_attention
from flt3d.nn.flt_short_range import with_short_range, with_short_range_dense
from flt3d.nn.graph import (
    GraphSizes,
    center_pos,
    checked_inputs,
    distance,
    graph_sizes,
)
from flt3d.nn.modes import MASKS
from flt3d.nn.neighbors import Neighbors, cosine_cutoff, local_neighbors
from flt3d.nn.precision import full_precision
from flt3d.nn.random_features import graph_shifted_features, orthogonal_gaussian
from flt3d.nn.switches import LayerModes

__all__ = ["FLTAttention"]

# Relative floor of the ``mul`` mask: M >= MUL_FLOOR * A keeps every row's weights positive.
MUL_FLOOR = 1e-3


class FLTAttention(LayerModes, nn.Module):
    r"""FourierLearner attention over tokens with coordinates, on flat PyG batches.

    Per head and per graph,

    .. math::
        \mathrm{out}_i = \frac{\sum_j w_{ij} v_j}{\sum_j w_{ij}},\quad
        w_{ij} = \exp\!\big(q_i\cdot k_j/\sqrt d + \hat f(r_i - r_j)\big)\ (\texttt{exp})
        \ \text{or}\ \exp(q_i\cdot k_j/\sqrt d)\,\big(A + \hat f(r_i - r_j)\big)\ (\texttt{mul}),

    where :math:`\hat f` is the finite-frequency RPE of the layer's spectral density (see
    :meth:`rpe`). ``attention="exact"`` computes this in O(N^2) over within-graph pairs;
    ``attention="linear"`` estimates the kernel with ``num_features`` positive random features
    in O(N) time and memory. The attribute :attr:`attention` may be switched at any time: both
    modes use the same parameters and the same :math:`\hat f`, so linear → exact as the number
    of features grows.

    ``mul`` stabiliser: :math:`\hat f` alone can be negative for a single draw of frequencies,
    which lets the normaliser cross zero. The mask is therefore shifted by slightly more than the
    spectral mass :math:`A = \frac1R\sum_r\sqrt{a_r^2+b_r^2} \ge |\hat f|`: with
    :math:`c = (1 + 10^{-3})A`, :math:`10^{-3}A \le c + \hat f \le 2.001A` for every draw, so
    the normaliser is a sum of positive terms (a token always sees at least itself). The cost
    is one more spectral feature and a bounded contrast: the mask can vary by a factor of
    about 2000, not more. Its features are the outer product of kernel and spectral features,
    ``num_features * (2R + 1)`` per head, against ``num_features`` for ``exp``.

    Args:
        heads: number of heads ``H``.
        head_channels: channels per head ``d``.
        pos_dim: coordinate dimension ``D`` (1 sequences, 2 images, 3 atoms).
        spectrum: spectral family (see :func:`flt3d.nn.densities.make_spectrum`) or ``None``
            for plain FAVOR+ attention without RPE (default ``"gaussian_mixture"``).
        mask: ``"exp"`` (RPE added to the logits) or ``"mul"`` (default ``"exp"``).
        num_features: random features ``m`` of the softmax kernel (default ``64``).
        num_frequencies: frequencies ``R`` of the spectral RPE (default ``16``).
        attention: ``"linear"`` or ``"exact"`` (default ``"linear"``).
        causal: attend only to tokens at or before the query, by row order within each graph.
        length_scale: shortest length the RPE resolves, in coordinate units (default ``1.0``).
        learnable_frequencies: learn the frequencies instead of keeping them fixed.
        closed_form_rpe: in exact mode, apply the spectrum's closed form :math:`f` (the
            :math:`R\to\infty` limit) instead of :math:`\hat f`; linear mode still estimates it
            with the ``R`` frequencies. Exact mode is then free of frequency noise and, for an
            isotropic spectrum, exactly rotation invariant. Needs ``mask="exp"`` and a family
            with a closed form (default ``False``).
        cutoff: split the RPE into an exact short range and a low-rank long range (default
            ``None``: one low-rank RPE over all pairs). With a cutoff :math:`r_c`, the RPE is

            .. math::
                F(\Delta) = f(\Delta)\,u(\lVert\Delta\rVert/r_c) + \hat f_{\mathrm{long}}(\Delta),

            ``spectrum``'s closed form times the cosine envelope :math:`u` (see
            :func:`~flt3d.nn.neighbors.cosine_cutoff`), plus ``long_range``'s finite-frequency
            estimate. Linear mode then computes the weights of pairs within the cutoff exactly,
            on a neighbour list, and estimates only the rest with random features: O(N k) for
            the short range, O(N) for the long range. Exact mode applies the same F to all
            pairs, so both modes mean the same function. Needs ``mask="exp"``, not causal,
            and a family with a closed form.
        long_range: spectral family of :math:`\hat f_{\mathrm{long}}` with a cutoff (default
            ``None``: none, far pairs get the content kernel alone). Keep it smooth
            (``long_range_length_scale`` well above ``length_scale``): its estimate rides in the
            random features, whose variance grows with the RPE's spectral mass.
        long_range_length_scale: its length scale (default ``4 * length_scale``).
        far: with a cutoff, what attends beyond it: ``"kernel"`` (default: every pair, the
            far ones through the content kernel, estimated with random features in linear
            mode) or ``None``: pairs within the cutoff only, weighed by the envelope,
            :math:`w_{ij} = u(\lVert\Delta\rVert/r_c)\,e^{q_i\cdot k_j/\sqrt d + F(\Delta)}`,
            which vanish smoothly at the cutoff (a local model: periodic cells and forces
            that never see past :math:`r_c`). Both modes compute it exactly.
        far_temperature: with a cutoff, the content logits :math:`q\cdot k/\sqrt d` are scaled
            by :math:`s = \tau + (1 - \tau)\,u(\lVert\Delta\rVert/r_c)`: 1 at short range,
            :math:`\tau` beyond the cutoff, smooth in between (default ``1.0``). The random
            features then estimate :math:`e^{\tau q\cdot k/\sqrt d}`, whose variance falls
            steeply with :math:`\tau` (it grows like :math:`e^{\tau\lVert x + y\rVert^2}`).
        sampler: how the low-rank RPE draws its frequencies, ``"proposal"`` or ``"density"``
            (see :class:`~flt3d.nn.spectrum.Spectrum`) (default ``"proposal"``).
        nodes: layout of those draws, ``"iid"``, ``"orthogonal"`` or ``"quadrature"`` (see
            :mod:`flt3d.nn.samplers`) (default ``"iid"``).
        redraw: ``"never"`` (the stored projection and frequencies, always) or ``"train"``
            (fresh ones at every forward pass in training mode, so training sees the
            estimator's expectation rather than one draw's noise; the stored draw, fixed at
            construction or by :meth:`redraw_features`, in eval mode) (default ``"never"``).
        spectrum_options: further keyword options of the spectral family.

    Shapes:
        - **input:** q, k, v ``[N, H, d]``, pos ``[N, D]``, batch ``[N]`` (optional),
          neighbors (optional, with a cutoff: a :class:`~flt3d.nn.neighbors.Neighbors` with
          self loops and at least this cutoff, to share one list between layers).
        - **output:** ``[N, H, d]``.

    Example:
        >>> import torch
        >>> att = FLTAttention(2, 4, 3, num_features=8)
        >>> q = k = v = torch.randn(5, 2, 4)
        >>> att(q, k, v, torch.randn(5, 3)).shape
        torch.Size([5, 2, 4])
    """

    def __init__(
        self,
        heads: int,
        head_channels: int,
        pos_dim: int,
        *,
        spectrum: str | None = "gaussian_mixture",
        mask: str = "exp",
        num_features: int = 64,
        num_frequencies: int = 16,
        attention: str = "linear",
        causal: bool = False,
        length_scale: float = 1.0,
        learnable_frequencies: bool = False,
        closed_form_rpe: bool = False,
        cutoff: float | None = None,
        long_range: str | None = None,
        long_range_length_scale: float | None = None,
        far_temperature: float = 1.0,
        far: str | None = "kernel",
        sampler: str = "proposal",
        nodes: str = "iid",
        redraw: str = "never",
        spectrum_options: dict | None = None,
    ) -> None:
        super().__init__()
        if mask not in MASKS:
            raise ValueError(f"mask must be one of {MASKS}, got {mask!r}")
        if heads < 1 or head_channels < 1 or pos_dim < 1 or num_features < 1:
            raise ValueError(
                "heads, head_channels, pos_dim and num_features must be positive, got "
                f"{heads}, {head_channels}, {pos_dim}, {num_features}"
            )
        self.heads = heads
        self.head_channels = head_channels
        self.pos_dim = pos_dim
        self.mask = mask
        self.num_features = num_features
        self.causal = causal
        self.init_modes(attention, redraw)
        # exact mode lays graphs out densely when padding costs at most this factor in pairs
        self.dense_waste = 2.0
        estimator = {"sampler": sampler, "nodes": nodes}
        self.cutoff, self.far_temperature = check_options(
            cutoff=cutoff, far_temperature=far_temperature, far=far, long_range=long_range,
            spectrum=spectrum, mask=mask, causal=causal, closed_form_rpe=closed_form_rpe,
        )  # fmt: skip
        self.far = far
        self.long_range = None
        if self.cutoff is not None:
            options = dict(spectrum_options or {})
            self.spectrum = make_spectrum(
                spectrum, heads, pos_dim, num_frequencies=1, length_scale=length_scale, **options
            )
            if not self.spectrum.closed_form:
                raise ValueError(f"cutoff needs a spectrum with a closed form, got {spectrum!r}")
            long_scale = 4 * length_scale if long_range_length_scale is None else long_range_length_scale
            self.long_range = make_spectrum(
                long_range,
                heads,
                pos_dim,
                num_frequencies=num_frequencies,
                length_scale=long_scale,
                **estimator,
            )
        else:
            self.spectrum = make_spectrum(
                spectrum,
                heads,
                pos_dim,
                num_frequencies=num_frequencies,
                length_scale=length_scale,
                learnable_frequencies=learnable_frequencies,
                **estimator,
                **(spectrum_options or {}),
            )
        self.spectrum_name = spectrum
        self.long_range_name = long_range
        self.closed_form_rpe = bool(closed_form_rpe)
        if self.closed_form_rpe and self.spectrum is not None:
            if mask != "exp":
                raise ValueError(f"closed_form_rpe needs mask='exp', got mask={mask!r}")
            if not self.spectrum.closed_form:
                raise ValueError(
                    f"closed_form_rpe needs a spectrum with a closed form, got {spectrum!r}"
                )
        low_rank = self.low_rank
        rides_in_kernel = low_rank is not None and mask == "exp"
        self.feature_dim = head_channels + (2 * num_frequencies if rides_in_kernel else 0)
        self.register_buffer("projection", self._draw_projection())

    @property
    def low_rank(self):
        """The spectral family estimated through frequencies: the RPE, or its long range."""
        return self.spectrum if self.cutoff is None else self.long_range

    def reset_parameters(self) -> None:
        """Reset the spectral parameters and redraw the random features."""
        for spectrum in (self.spectrum, self.long_range):
            if spectrum is not None:
                spectrum.reset_parameters()
        self.redraw_features()

    @torch.no_grad()
    def redraw_features(self, *, generator: torch.Generator | None = None) -> None:
        """Draw a fresh orthogonal projection for the kernel's random features, in place."""
        self.projection.copy_(self._draw_projection(generator=generator).to(self.projection))

    @torch.no_grad()
    def redraw_frequencies(self, *, generator: torch.Generator | None = None) -> None:
        """Draw fresh RPE frequencies (the low-rank part), in place."""
        if self.low_rank is not None:
            self.low_rank.redraw_frequencies(generator=generator)

    def _draw_projection(self, **options) -> Tensor:
        """A fresh antithetic orthogonal projection ``[H, m, feature_dim]``; ``options`` as in
        :func:`~flt3d.nn.random_features.orthogonal_gaussian` (generator, dtype, device)."""
        return orthogonal_gaussian(
            self.heads, self.num_features, self.feature_dim, antithetic=True, **options
        )

    def draws(self, *, exact: bool = False) -> tuple[Tensor, Tensor | None]:
        """``(projection, frequencies)`` for one forward pass.

        Fresh ones in training mode with ``redraw="train"``, otherwise the stored ones
        (``frequencies`` is then ``None``, meaning the spectrum's own buffer). ``exact=True``
        draws only what exact mode uses: no projection (the stored one is returned), and no
        frequencies where its RPE is the closed form.
        """
        if self.redraw == "train" and self.training:
            proj = self.projection
            if not exact:
                proj = self._draw_projection(
                    dtype=self.projection.dtype, device=self.projection.device
                )
            freq = None
            closed_form = exact and self.cutoff is None and self.closed_form_rpe
            if self.low_rank is not None and not closed_form:
                freq = self.low_rank.draw_frequencies().to(self.low_rank.frequencies)
            return proj, freq
        return self.projection, None

    def rpe(self, delta: Tensor, frequencies: Tensor | None = None) -> Tensor:
        r"""The RPE exact mode applies: ``delta [..., D]`` → ``[..., H]``.

        :math:`\hat f(\Delta)` for ``exp`` (added to the logits) and :math:`c + \hat f(\Delta)`
        for ``mul`` (the kernel's factor, :math:`c` the shift above); the closed form
        :math:`f(\Delta)` with ``closed_form_rpe``; :math:`F(\Delta)` with a cutoff; zeros /
        ones without a spectrum. Linear mode estimates the same weights (with
        ``closed_form_rpe``, through :math:`\hat f`).
        """
        if delta.dim() < 1 or delta.shape[-1] != self.pos_dim:
            raise ValueError(f"delta must be [..., {self.pos_dim}], got {tuple(delta.shape)}")
        if self.spectrum is None:
            fill = 0.0 if self.mask == "exp" else 1.0
            return delta.new_full((*delta.shape[:-1], self.heads), fill)
        if self.cutoff is not None:
            f = self.short_range(delta)
            if self.long_range is not None:
                f = f + self.long_range(delta, frequencies)
            return f
        if self.closed_form_rpe:
            return self.spectrum.limit(delta)
        f = self.spectrum(delta, frequencies)
        return f + self.mul_shift(frequencies).to(f.dtype) if self.mask == "mul" else f

    def logit_scale(self, delta: Tensor) -> Tensor | None:
        r"""The factor :math:`s(\Delta)` on the content logits, ``[..., 1]`` (``None`` if 1)."""
        if self.cutoff is None or self.far_temperature == 1:
            return None
        envelope = cosine_cutoff(distance(delta), self.cutoff).unsqueeze(-1)
        return self.far_temperature + (1 - self.far_temperature) * envelope

    def short_range(self, delta: Tensor) -> Tensor:
        r""":math:`f(\Delta)\,u(\lVert\Delta\rVert / r_c)`, the exact part of a cutoff RPE, ``[..., H]``."""
        envelope = cosine_cutoff(distance(delta), self.cutoff)
        return self.spectrum.limit(delta) * envelope.unsqueeze(-1)

    def mul_shift(self, frequencies: Tensor | None = None) -> Tensor:
        """The ``mul`` mask's shift :math:`c = (1 + 10^{-3}) A`, per head, ``[H]``."""
        return (1 + MUL_FLOOR) * self.spectrum.mass(frequencies)

    @full_precision
    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        pos: Tensor,
        batch: Tensor | None = None,
        *,
        neighbors: Neighbors | None = None,
        num_graphs: int | None = None,
        validate: bool = True,
        sizes: GraphSizes | None = None,
    ) -> Tensor:
        """Attend; see the class docstring for shapes.

        ``num_graphs`` is ``G`` (default ``batch.max() + 1``). ``validate=False`` skips the
        checks that read values (finite ``pos``, graph ids in ``[0, G)``; shapes are always
        checked), for a caller that made them once for several layers (:class:`FLTConv`).
        ``sizes`` (:class:`~flt3d.nn.graph.GraphSizes`) are the graph sizes that choose the
        layout (dense blocks, pair lists or a neighbour list); a caller that computed them once
        for several layers passes them, else they are read here (one host sync).
        """
        check_inputs(self, q, k, v, pos)
        batch, num_graphs = checked_inputs(pos, batch, num_graphs, validate)
        sizes = graph_sizes(batch, num_graphs) if sizes is None else sizes.check(batch, num_graphs)
        if neighbors is not None and neighbors.periodic and self.far is not None:
            raise ValueError(
                "periodic neighbours need a local attention (far=None): attention beyond the "
                "cutoff over one cell's atoms is not a periodic function"
            )
        pos = center_pos(pos.to(q.dtype), batch, num_graphs)
        if self.far is None:  # no random features, no frequencies
            return local_attention(self, q, k, v, pos, batch, num_graphs, neighbors, sizes)
        projection, frequencies = self.draws(exact=self.attention == "exact")
        if self.attention == "exact":
            return exact_forward(self, q, k, v, pos, batch, num_graphs, sizes, frequencies)
        xq, xk, psi, eq, ek = kernel_exponents(
            self, q, k, pos, frequencies, projection, batch, num_graphs, sizes
        )
        outer = mul_factors(self, psi, q.shape[0], frequencies)
        if self.causal:
            return causal_linear_attention(
                eq, ek, v, batch, num_graphs, q_outer=outer[0], k_outer=outer[1]
            )
        phi_q, phi_k, row = graph_shifted_features(eq, ek, batch, num_graphs)
        phi_q, phi_k = with_mul_factors(phi_q, phi_k, outer)
        if self.cutoff is None:
            return linear_attention(phi_q, phi_k, v, batch, num_graphs, sizes=sizes)
        if sizes.small():
            return with_short_range_dense(self, xq, xk, phi_q, phi_k, row, v, pos, batch, sizes)
        neighbors = local_neighbors(neighbors, pos, batch, num_graphs, self.cutoff)
        sums = linear_attention_sums(phi_q, phi_k, v, batch, num_graphs, sizes=sizes)
        return with_short_range(self, sums, xq, xk, phi_q, phi_k, row, v, pos, neighbors)

    @full_precision
    def kernel(self, q: Tensor, k: Tensor, pos: Tensor) -> Tensor:
        r"""The unnormalised attention weights :math:`w_{ij}` of one graph, ``[N, N, H]``.

        In exact mode the weights of the class formula; in linear mode their estimate with
        the stored draw: the random-feature estimate (unbiased for the former) and, with a
        cutoff, the exact weight of pairs within it, the estimate of the others rescaled per
        row by exact over estimated near weights (a ratio estimator). Dense: for tests and
        plots on small inputs. The causal mask is not applied.
        """
        return dense_weights(self, q, k, pos)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(heads={self.heads}, head_channels={self.head_channels}, "
            f"pos_dim={self.pos_dim}, spectrum={self.spectrum_name!r}, mask={self.mask!r}, "
            f"num_features={self.num_features}, attention={self.attention!r}, "
            f"causal={self.causal}"
            + (", closed_form_rpe=True" if self.closed_form_rpe else "")
            + ("" if self.cutoff is None else f", cutoff={self.cutoff}")
            + ("" if self.far_temperature == 1 else f", far_temperature={self.far_temperature}")
            + ("" if self.far == "kernel" else ", far=None")
            + ("" if self.long_range is None else f", long_range={self.long_range_name!r}")
            + ("" if self.redraw == "never" else f", redraw={self.redraw!r}")
            + ")"
        )
