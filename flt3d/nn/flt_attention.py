"""FLTAttention: multi-head attention with a learned spectral RPE, linear or exact."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from flt3d.nn.attention import (
    causal_linear_attention,
    dense_exact_attention,
    exact_attention,
    linear_attention,
    linear_attention_sums,
)
from flt3d.nn.densities import make_spectrum
from flt3d.nn.graph import (
    GraphSizes,
    center_pos,
    check_batch,
    check_finite,
    checked_inputs,
    dense_batch,
    distance,
    graph_pairs,
    graph_sizes,
)
from flt3d.nn.modes import ATTENTIONS, FARS, MASKS, REDRAWS
from flt3d.nn.neighbors import Neighbors, cosine_cutoff, local_neighbors
from flt3d.nn.pairs import pair_chunking, pair_max, pair_sum
from flt3d.nn.precision import full_precision
from flt3d.nn.random_features import (
    feature_exponents,
    graph_optimal_a,
    graph_shifted_features,
    orthogonal_gaussian,
)

__all__ = ["FLTAttention"]

# Relative floor of the ``mul`` mask: M >= MUL_FLOOR * A keeps every row's weights positive.
MUL_FLOOR = 1e-3


class FLTAttention(nn.Module):
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
        if redraw not in REDRAWS:
            raise ValueError(f"redraw must be one of {REDRAWS}, got {redraw!r}")
        self.heads = heads
        self.head_channels = head_channels
        self.pos_dim = pos_dim
        self.mask = mask
        self.num_features = num_features
        self.causal = causal
        self.attention = attention
        self.redraw = redraw
        # exact mode lays graphs out densely when padding costs at most this factor in pairs
        self.dense_waste = 2.0
        estimator = {"sampler": sampler, "nodes": nodes}
        self.cutoff = None if cutoff is None else float(cutoff)
        self.far_temperature = float(far_temperature)
        if not 0 < self.far_temperature <= 1:
            raise ValueError(f"far_temperature must be in (0, 1], got {far_temperature}")
        if self.far_temperature != 1 and self.cutoff is None:
            raise ValueError("far_temperature needs a cutoff (it applies beyond it)")
        if far not in FARS:
            raise ValueError(f"far must be one of {FARS}, got {far!r}")
        self.far = far
        if far is None and (cutoff is None or long_range is not None or far_temperature != 1):
            raise ValueError(
                "far=None (attention within the cutoff only) needs a cutoff, no long_range and "
                f"far_temperature=1, got cutoff={cutoff}, long_range={long_range!r}, "
                f"far_temperature={far_temperature}"
            )
        self.long_range = None
        if self.cutoff is not None:
            if not (math.isfinite(self.cutoff) and self.cutoff > 0):
                raise ValueError(f"cutoff must be a positive number, got {cutoff}")
            if spectrum is None or mask != "exp" or causal or closed_form_rpe:
                raise ValueError(
                    "cutoff needs a spectrum, mask='exp', causal=False and no closed_form_rpe, "
                    f"got spectrum={spectrum!r}, mask={mask!r}, causal={causal}, "
                    f"closed_form_rpe={closed_form_rpe}"
                )
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
            if long_range is not None:
                raise ValueError("long_range needs a cutoff (it is the part beyond it)")
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
        self.register_buffer(
            "projection",
            orthogonal_gaussian(heads, num_features, self.feature_dim, antithetic=True),
        )

    @property
    def low_rank(self):
        """The spectral family estimated through frequencies: the RPE, or its long range."""
        return self.spectrum if self.cutoff is None else self.long_range

    @property
    def attention(self) -> str:
        """``"linear"`` or ``"exact"``; may be changed at any time."""
        return self._attention

    @attention.setter
    def attention(self, value: str) -> None:
        if value not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {value!r}")
        self._attention = value

    def reset_parameters(self) -> None:
        """Reset the spectral parameters and redraw the random features."""
        for spectrum in (self.spectrum, self.long_range):
            if spectrum is not None:
                spectrum.reset_parameters()
        self.redraw_features()

    @torch.no_grad()
    def redraw_features(self, *, generator: torch.Generator | None = None) -> None:
        """Draw a fresh orthogonal projection for the kernel's random features, in place."""
        w = orthogonal_gaussian(
            self.heads, self.num_features, self.feature_dim, generator=generator, antithetic=True
        )
        self.projection.copy_(w.to(self.projection))

    @torch.no_grad()
    def redraw_frequencies(self, *, generator: torch.Generator | None = None) -> None:
        """Draw fresh RPE frequencies (the low-rank part), in place."""
        if self.low_rank is not None:
            self.low_rank.redraw_frequencies(generator=generator)

    def draws(self) -> tuple[Tensor, Tensor | None]:
        """``(projection, frequencies)`` for one forward pass.

        Fresh ones in training mode with ``redraw="train"``, otherwise the stored ones
        (``frequencies`` is then ``None``, meaning the spectrum's own buffer).
        """
        if self.redraw == "train" and self.training:
            proj = orthogonal_gaussian(
                self.heads,
                self.num_features,
                self.feature_dim,
                dtype=self.projection.dtype,
                device=self.projection.device,
                antithetic=True,
            )
            freq = None
            if self.low_rank is not None:
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
        self._check_inputs(q, k, v, pos)
        batch, num_graphs = checked_inputs(pos, batch, num_graphs, validate)
        sizes = graph_sizes(batch, num_graphs) if sizes is None else sizes.check(batch, num_graphs)
        if neighbors is not None and neighbors.periodic and self.far is not None:
            raise ValueError(
                "periodic neighbours need a local attention (far=None): attention beyond the "
                "cutoff over one cell's atoms is not a periodic function"
            )
        pos = center_pos(pos.to(q.dtype), batch, num_graphs)
        projection, frequencies = self.draws()
        if self.far is None:
            return self._local_only(q, k, v, pos, batch, num_graphs, neighbors, sizes)
        if self.attention == "exact":
            if q.shape[0] and num_graphs * sizes.largest**2 <= self.dense_waste * sizes.squares:
                return self._exact_dense(q, k, v, pos, batch, sizes, frequencies)
            pairs = graph_pairs(batch, num_graphs, causal=self.causal)
            rpe = scale = None
            if self.spectrum is not None:
                delta = pos[pairs[0]] - pos[pairs[1]]
                rpe, scale = self.rpe(delta, frequencies), self.logit_scale(delta)
            return exact_attention(q, k, v, pairs, rpe=rpe, mask=self.mask, logit_scale=scale)
        xq, xk, psi = self._kernel_inputs(q, k, pos, frequencies)
        a = 0.0 if self.causal else graph_optimal_a(xq, xk, batch, num_graphs)
        eq, ek = feature_exponents(xq, projection, a=a), feature_exponents(xk, projection, a=a)
        outer = self._mul_factors(psi, q.shape[0], frequencies)
        if self.causal:
            return causal_linear_attention(
                eq, ek, v, batch, num_graphs, q_outer=outer[0], k_outer=outer[1]
            )
        phi_q, phi_k, row = graph_shifted_features(eq, ek, batch, num_graphs)
        if outer[0] is not None:
            phi_q = (phi_q.unsqueeze(-1) * outer[0].unsqueeze(-2)).flatten(-2)
            phi_k = (phi_k.unsqueeze(-1) * outer[1].unsqueeze(-2)).flatten(-2)
        if self.cutoff is None:
            return linear_attention(phi_q, phi_k, v, batch, num_graphs, sizes=sizes)
        if sizes.small():
            return self._with_short_range_dense(xq, xk, phi_q, phi_k, row, v, pos, batch, sizes)
        neighbors = local_neighbors(neighbors, pos, batch, num_graphs, self.cutoff)
        sums = linear_attention_sums(phi_q, phi_k, v, batch, num_graphs, sizes=sizes)
        return self._with_short_range(sums, xq, xk, phi_q, phi_k, row, v, pos, neighbors)

    def _local_only(self, q, k, v, pos, batch, num_graphs, neighbors, sizes) -> Tensor:
        # far=None: w_ij = u(r_ij) exp(q.k / sqrt(d) + F(delta)) over pairs within the cutoff.
        # Exact mode sums every pair of a graph (u = 0 beyond the cutoff); linear mode the
        # pairs of each small graph within the cutoff, or a neighbour list: the same weights.
        # A periodic list (pairs across cell boundaries, images included) serves both modes.
        periodic = neighbors is not None and neighbors.periodic
        if not periodic and (self.attention == "exact" or sizes.small()):
            i, j = graph_pairs(batch, num_graphs)
            delta = pos[i] - pos[j]
            if self.attention == "linear":
                near = distance(delta) < self.cutoff
                i, j, delta = i[near], j[near], delta[near]
            index = torch.stack([i, j])
        else:
            neighbors = local_neighbors(neighbors, pos, batch, num_graphs, self.cutoff)
            index, delta = neighbors.index, neighbors.displacements(pos)
        scale = self.head_channels**-0.5

        def log_weight(q_i, k_j, delta_p):
            return scale * (q_i * k_j).sum(-1) + self.short_range(delta_p)

        def message(q_i, shift_i, k_j, v_j, delta_p):
            envelope = cosine_cutoff(distance(delta_p), self.cutoff).unsqueeze(-1)
            w = envelope * torch.exp(log_weight(q_i, k_j, delta_p) - shift_i)
            v1 = torch.cat([v_j, v_j.new_ones(*v_j.shape[:-1], 1)], dim=-1)
            return w.unsqueeze(-1) * v1

        per_pair = 3 * self.heads * (2 * self.head_channels + 2)
        shift = pair_max(
            log_weight,
            index,
            v.shape[0],
            sources_i=(q,),
            sources_j=(k,),
            pair_data=(delta,),
            per_pair=per_pair,
        )  # [N, H], finite: every row has its self pair
        sums = pair_sum(
            message,
            index,
            v.shape[0],
            sources_i=(q, shift),
            sources_j=(k, v),
            pair_data=(delta,),
            params=tuple(self.spectrum.parameters()),
            per_pair=per_pair,
        )
        return sums[..., :-1] / sums[..., -1:]

    def _kernel_inputs(self, q: Tensor, k: Tensor, pos: Tensor, frequencies: Tensor | None):
        # the scaled queries and keys, with the low-rank RPE features appended (exp mask)
        scale = self.head_channels**-0.25 * self.far_temperature**0.5
        xq, xk = q * scale, k * scale
        low_rank = self.low_rank
        psi = None if low_rank is None else low_rank.features(pos, frequencies)
        if psi is not None and self.mask == "exp":
            xq = torch.cat([xq, psi[0]], dim=-1)
            xk = torch.cat([xk, psi[1]], dim=-1)
        return xq, xk, psi

    def _mul_factors(self, psi, n: int, frequencies: Tensor | None):
        # the mul mask's positive-sum factors [sqrt(c), psi]: c + f_hat = psi_q . psi_k
        if psi is None or self.mask != "mul":
            return None, None
        shift = self.mul_shift(frequencies).to(psi[0].dtype).sqrt().expand(n, -1).unsqueeze(-1)
        return torch.cat([shift, psi[0]], dim=-1), torch.cat([shift, psi[1]], dim=-1)

    def _near_extra(self, xq_i: Tensor, xk_j: Tensor, delta: Tensor) -> Tensor:
        # log of the exact near weight over what the features estimate: the short-range RPE
        # and, with a far temperature, the rest of the content logit (s / tau - 1) tau q.k
        extra = self.short_range(delta)
        if self.far_temperature != 1:
            d = self.head_channels
            content = (xq_i[..., :d] * xk_j[..., :d]).sum(-1)
            extra = extra + (self.logit_scale(delta) / self.far_temperature - 1) * content
        return extra

    def _with_short_range(self, sums, xq, xk, phi_q, phi_k, row, v, pos, neighbors) -> Tensor:
        # Pairs within the cutoff: their exact weights replace their random-feature estimate.
        # Everything is in units of exp(row_i) (the feature shift); an extra detached per-row
        # shift t_i >= 0 keeps the exact weights from overflowing.
        delta = neighbors.displacements(pos)
        row = row.squeeze(-1)

        def log_weight(xq_i, row_i, xk_j, delta_p):
            return (xq_i * xk_j).sum(-1) + self._near_extra(xq_i, xk_j, delta_p) - row_i

        def message(xq_i, row_i, shift_i, phq_i, xk_j, phk_j, v_j, delta_p):
            # the exact weight, its estimate, and the exact weight of what the estimate
            # estimates (without the short-range RPE), for the ratio below
            plain = (xq_i * xk_j).sum(-1) - row_i - shift_i
            exact = torch.exp(plain + self._near_extra(xq_i, xk_j, delta_p))
            estimate = (phq_i * phk_j).sum(-1)  # in units of exp(row), like sums
            v1 = torch.cat([v_j, v_j.new_ones(*v_j.shape[:-1], 1)], dim=-1)
            parts = [exact.unsqueeze(-1) * v1, estimate.unsqueeze(-1) * v1, plain.exp().unsqueeze(-1)]
            return torch.cat(parts, dim=-1)

        width = xq.shape[-1] + phi_q.shape[-1] + v.shape[-1]
        i, j = neighbors.index
        per_pair = 3 * self.heads * width
        if not pair_chunking(i.numel(), per_pair):
            # small enough to hold every pair's tensors: one pass, no recomputation
            log_w = log_weight(xq[i], row[i], xk[j], delta).detach()
            shift = log_w.new_zeros(v.shape[0], self.heads)
            shift = shift.scatter_reduce(0, i.view(-1, 1).expand_as(log_w), log_w, "amax")
            msg = message(xq[i], row[i], shift[i], phi_q[i], xk[j], phi_k[j], v[j], delta)
            local = msg.new_zeros(v.shape[0], *msg.shape[1:]).index_add(0, i, msg)
        else:
            top = pair_max(
                log_weight,
                neighbors.index,
                v.shape[0],
                sources_i=(xq, row),
                sources_j=(xk,),
                pair_data=(delta,),
                per_pair=per_pair,
            )
            shift = top.clamp_min(0.0)  # [N, H]; every row has its self pair
            local = pair_sum(
                message,
                neighbors.index,
                v.shape[0],
                sources_i=(xq, row, shift, phi_q),
                sources_j=(xk, phi_k, v),
                pair_data=(delta,),
                params=tuple(self.spectrum.parameters()),
                per_pair=per_pair,
            )
        e = v.shape[-1] + 1
        near, near_estimate, near_plain = local[..., :e], local[..., e : 2 * e], local[..., -1:]
        far = sums - near_estimate
        # The estimate's error is mostly a factor common to a query row (its features);
        # with every pair estimated it would cancel in the normalisation. Here the near pairs
        # are exact, so the row's far estimate is rescaled by how its near estimate compares
        # with the exact weights it estimates: a ratio estimator, consistent (-> 1 as m grows).
        ratio = near_plain / _near_floor(near_estimate[..., -1:], sums[..., -1:])
        total = near + far * ratio
        return total[..., :-1] / total[..., -1:]

    def _with_short_range_dense(self, xq, xk, phi_q, phi_k, row, v, pos, batch, sizes):
        # The estimator of _with_short_range, laid out as [G, n, n] blocks for small graphs
        # (molecules): the same weights, computed with batched products instead of pair lists.
        dense, real, perm = dense_batch([xq, xk, phi_q, phi_k, row, v, pos], batch, sizes)
        dq, dk, fq, fk, drow, dv, dpos = dense
        delta = dpos.unsqueeze(2) - dpos.unsqueeze(1)  # [G, n, n, D]
        keys = (real.unsqueeze(1) & real.unsqueeze(2)).unsqueeze(-1)  # [G, n, n, 1]
        near = keys & (distance(delta) < self.cutoff).unsqueeze(-1)
        plain = torch.einsum("gihf,gjhf->gijh", dq, dk) - drow.squeeze(-1).unsqueeze(2)
        log_w = plain + self.short_range(delta)
        if self.far_temperature != 1:
            d = self.head_channels
            content = torch.einsum("gihf,gjhf->gijh", dq[..., :d], dk[..., :d])
            log_w = log_w + (self.logit_scale(delta) / self.far_temperature - 1) * content
        shift = log_w.detach().masked_fill(~near, 0.0).amax(dim=2, keepdim=True).clamp_min(0.0)
        exact = torch.exp((log_w - shift).masked_fill(~near, -torch.inf))
        plain = torch.exp((plain - shift).masked_fill(~near, -torch.inf))
        # the estimates in units of exp(row) (no exp(-shift): it cancels in the ratio, and
        # could underflow); every row's estimate over its whole graph is at least 1
        estimate = torch.einsum("gihm,gjhm->gijh", fq, fk) * keys
        near_estimate = estimate * near
        ratio = plain.sum(2, keepdim=True) / _near_floor(
            near_estimate.sum(2, keepdim=True), estimate.sum(2, keepdim=True)
        )
        weights = exact + (estimate - near_estimate) * ratio
        # padded rows have no keys: a normaliser of one keeps them (and their gradients) finite
        normaliser = weights.sum(2) + (~real).unsqueeze(-1).to(weights.dtype)
        out = torch.einsum("gijh,gjhe->gihe", weights, dv) / normaliser.unsqueeze(-1)
        out = out[real]
        return torch.empty_like(out).index_copy_(0, perm, out)

    def _exact_dense(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        pos: Tensor,
        batch: Tensor,
        sizes: GraphSizes,
        frequencies: Tensor | None = None,
    ) -> Tensor:
        # the RPE matrix through its low-rank factors psi_Q . psi_K, equal to rpe(r_i - r_j)
        # up to rounding and far cheaper than n^2 R trigonometric evaluations; directly from
        # the displacements for closed forms and cutoff RPEs
        direct = self.spectrum is not None and (self.closed_form_rpe or self.cutoff is not None)
        flat = [q, k, v]
        if direct:
            flat.append(pos)
        elif self.spectrum is not None:
            flat += list(self.spectrum.features(pos, frequencies))
        dense, real, perm = dense_batch(flat, batch, sizes)
        rpe = scale = None
        if direct:
            dense_pos = dense[3]
            delta = dense_pos.unsqueeze(2) - dense_pos.unsqueeze(1)
            rpe, scale = self.rpe(delta, frequencies), self.logit_scale(delta)
        elif self.spectrum is not None:
            rpe = torch.einsum("gihr,gjhr->gijh", dense[3], dense[4])
            if self.mask == "mul":
                rpe = rpe + self.mul_shift(frequencies).to(rpe.dtype)
        out = dense_exact_attention(
            dense[0],
            dense[1],
            dense[2],
            real,
            rpe=rpe,
            mask=self.mask,
            causal=self.causal,
            logit_scale=scale,
        )[real]
        return torch.empty_like(out).index_copy_(0, perm, out)

    @full_precision
    def kernel(self, q: Tensor, k: Tensor, pos: Tensor) -> Tensor:
        r"""The unnormalised attention weights :math:`w_{ij}` of one graph, ``[N, N, H]``.

        In exact mode the weights of the class formula; in linear mode their estimate with
        the stored draw: the random-feature estimate (unbiased for the former) and, with a
        cutoff, the exact weight of pairs within it, the estimate of the others rescaled per
        row by exact over estimated near weights (a ratio estimator). Dense: for tests and
        plots on small inputs. The causal mask is not applied.
        """
        self._check_inputs(q, k, k, pos)
        check_finite(pos)
        batch, num_graphs = check_batch(None, q.shape[0], q.device)
        pos = center_pos(pos.to(q.dtype), batch, num_graphs)
        delta = pos.unsqueeze(1) - pos.unsqueeze(0)
        logits = torch.einsum("ihd,jhd->ijh", q, k) / self.head_channels**0.5
        scale = self.logit_scale(delta)
        if scale is not None:
            logits = logits * scale
        if self.attention == "exact":
            rpe = self.rpe(delta)
            return torch.exp(logits + rpe) if self.mask == "exp" else torch.exp(logits) * rpe
        xq, xk, psi = self._kernel_inputs(q, k, pos, None)
        a = 0.0 if self.causal else graph_optimal_a(xq, xk, batch, num_graphs)
        eq = feature_exponents(xq, self.projection, a=a)
        ek = feature_exponents(xk, self.projection, a=a)
        w = torch.logsumexp(eq.unsqueeze(1) + ek.unsqueeze(0), dim=-1).exp()
        if psi is not None and self.mask == "mul":
            w = w * self.rpe(delta)
        if self.cutoff is not None:
            near = (distance(delta) < self.cutoff).unsqueeze(-1)
            rpe = self.rpe(delta)
            content = logits if scale is None else logits / scale * self.far_temperature
            plain = torch.exp(content + rpe - self.short_range(delta))
            ratio = (plain * near).sum(1, keepdim=True) / (w * near).sum(1, keepdim=True)
            w = torch.where(near, torch.exp(logits + rpe), w * ratio)
        return w

    def _check_inputs(self, q: Tensor, k: Tensor, v: Tensor, pos: Tensor) -> None:
        expected = (self.heads, self.head_channels)
        for name, t in (("q", q), ("k", k), ("v", v)):
            if not isinstance(t, Tensor) or t.dim() != 3 or tuple(t.shape[1:]) != expected:
                shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(f"{name} must be [N, {expected[0]}, {expected[1]}], got {shape}")
        if not (q.shape[0] == k.shape[0] == v.shape[0]):
            raise ValueError(
                f"q, k, v must have the same N, got {q.shape[0]}, {k.shape[0]}, {v.shape[0]}"
            )
        if not isinstance(pos, Tensor) or pos.dim() != 2 or pos.shape[1] != self.pos_dim:
            shape = tuple(pos.shape) if isinstance(pos, Tensor) else type(pos).__name__
            raise ValueError(
                f"pos must be [N, {self.pos_dim}] (pos_dim={self.pos_dim}), got {shape}"
            )
        if pos.shape[0] != q.shape[0]:
            raise ValueError(f"pos must have N = {q.shape[0]} rows like q, got {pos.shape[0]}")
        if not pos.is_floating_point():
            raise ValueError(f"pos must be a floating tensor, got {pos.dtype}")

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


def _near_floor(near: Tensor, total: Tensor) -> Tensor:
    # The ratio estimator divides by a row's estimated near weight. Where the features put
    # almost all of a row's weight on far keys that estimate can be tiny, and 1 / x then
    # overflows in the backward pass (NaN gradients); a floor relative to the row's whole
    # estimate (itself >= 1 for a real row) bounds the ratio at 1e6 and is inactive
    # otherwise; padded rows of the dense layout (no keys) get the smallest normal number.
    floor = (1e-6 * total.detach()).clamp_min(torch.finfo(near.dtype).tiny)
    return torch.maximum(near, floor)
