"""FLTAttention: multi-head attention with a learned spectral RPE, linear or exact."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.utils import to_dense_batch

from flt3d.nn.attention import dense_exact_attention, exact_attention, linear_attention
from flt3d.nn.densities import make_spectrum
from flt3d.nn.graph import center_pos, check_batch, graph_pairs
from flt3d.nn.random_features import causal_shift, orthogonal_gaussian, positive_features

__all__ = ["FLTAttention"]

MASKS = ("exp", "mul")
# Relative floor of the ``mul`` mask: M >= MUL_FLOOR * A keeps every row's weights positive.
MUL_FLOOR = 1e-3
ATTENTIONS = ("linear", "exact")


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
        spectrum_options: further keyword options of the spectral family.

    Shapes:
        - **input:** q, k, v ``[N, H, d]``, pos ``[N, D]``, batch ``[N]`` (optional).
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
        self.attention = attention
        # exact mode lays graphs out densely when padding costs at most this factor in pairs
        self.dense_waste = 2.0
        self.spectrum = make_spectrum(
            spectrum,
            heads,
            pos_dim,
            num_frequencies=num_frequencies,
            length_scale=length_scale,
            learnable_frequencies=learnable_frequencies,
            **(spectrum_options or {}),
        )
        self.spectrum_name = spectrum
        self.closed_form_rpe = bool(closed_form_rpe)
        if self.closed_form_rpe and self.spectrum is not None:
            if mask != "exp":
                raise ValueError(f"closed_form_rpe needs mask='exp', got mask={mask!r}")
            if not self.spectrum.closed_form:
                raise ValueError(
                    f"closed_form_rpe needs a spectrum with a closed form, got {spectrum!r}"
                )
        rides_in_kernel = self.spectrum is not None and mask == "exp"
        self.feature_dim = head_channels + (2 * num_frequencies if rides_in_kernel else 0)
        self.register_buffer(
            "projection", orthogonal_gaussian(heads, num_features, self.feature_dim)
        )

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
        if self.spectrum is not None:
            self.spectrum.reset_parameters()
        self.redraw_features()

    @torch.no_grad()
    def redraw_features(self, *, generator: torch.Generator | None = None) -> None:
        """Draw a fresh orthogonal projection for the kernel's random features, in place."""
        w = orthogonal_gaussian(
            self.heads, self.num_features, self.feature_dim, generator=generator
        )
        self.projection.copy_(w.to(self.projection))

    @torch.no_grad()
    def redraw_frequencies(self, *, generator: torch.Generator | None = None) -> None:
        """Draw fresh RPE frequencies from the spectrum's proposal, in place."""
        if self.spectrum is not None:
            self.spectrum.redraw_frequencies(generator=generator)

    def rpe(self, delta: Tensor) -> Tensor:
        r"""The RPE exact mode applies: ``delta [..., D]`` → ``[..., H]``.

        :math:`\hat f(\Delta)` for ``exp`` (added to the logits) and :math:`c + \hat f(\Delta)`
        for ``mul`` (the kernel's factor, :math:`c` the shift above); the closed form
        :math:`f(\Delta)` with ``closed_form_rpe``; zeros / ones without a spectrum. Linear mode
        estimates the same weights (with ``closed_form_rpe``, through :math:`\hat f`).
        """
        if delta.dim() < 1 or delta.shape[-1] != self.pos_dim:
            raise ValueError(f"delta must be [..., {self.pos_dim}], got {tuple(delta.shape)}")
        if self.spectrum is None:
            fill = 0.0 if self.mask == "exp" else 1.0
            return delta.new_full((*delta.shape[:-1], self.heads), fill)
        if self.closed_form_rpe:
            return self.spectrum.limit(delta)
        f = self.spectrum(delta)
        return f + self.mul_shift().to(f.dtype) if self.mask == "mul" else f

    def mul_shift(self) -> Tensor:
        """The ``mul`` mask's shift :math:`c = (1 + 10^{-3}) A`, per head, ``[H]``."""
        return (1 + MUL_FLOOR) * self.spectrum.mass()

    def forward(self, q: Tensor, k: Tensor, v: Tensor, pos: Tensor, batch: Tensor | None = None):
        """Attend; see the class docstring for shapes."""
        self._check_inputs(q, k, v, pos)
        batch, num_graphs = check_batch(batch, q.shape[0], q.device)
        pos = center_pos(pos.to(q.dtype), batch, num_graphs)
        if self.attention == "exact":
            counts = torch.bincount(batch, minlength=num_graphs)
            if num_graphs * int(counts.max()) ** 2 <= self.dense_waste * int(counts.pow(2).sum()):
                return self._exact_dense(q, k, v, pos, batch, num_graphs)
            pairs = graph_pairs(batch, num_graphs, causal=self.causal)
            rpe = None
            if self.spectrum is not None:
                rpe = self.rpe(pos[pairs[0]] - pos[pairs[1]])
            return exact_attention(q, k, v, pairs, rpe=rpe, mask=self.mask)
        phi_q, phi_k = self.feature_maps(q, k, pos, batch, num_graphs)
        return linear_attention(phi_q, phi_k, v, batch, num_graphs, causal=self.causal)

    def _exact_dense(
        self, q: Tensor, k: Tensor, v: Tensor, pos: Tensor, batch: Tensor, num_graphs: int
    ) -> Tensor:
        # the RPE matrix through its low-rank factors psi_Q . psi_K, equal to rpe(r_i - r_j)
        # up to rounding and far cheaper than n^2 R trigonometric evaluations
        flat = [q, k, v]
        if self.closed_form_rpe and self.spectrum is not None:
            flat.append(pos)
        elif self.spectrum is not None:
            flat += list(self.spectrum.features(pos))
        perm = torch.argsort(batch, stable=True)
        dense = [to_dense_batch(t[perm], batch[perm], batch_size=num_graphs) for t in flat]
        real = dense[0][1]
        rpe = None
        if self.closed_form_rpe and self.spectrum is not None:
            dense_pos = dense[3][0]
            rpe = self.rpe(dense_pos.unsqueeze(2) - dense_pos.unsqueeze(1))
        elif self.spectrum is not None:
            rpe = torch.einsum("gihr,gjhr->gijh", dense[3][0], dense[4][0])
            if self.mask == "mul":
                rpe = rpe + self.mul_shift().to(rpe.dtype)
        out = dense_exact_attention(
            dense[0][0],
            dense[1][0],
            dense[2][0],
            real,
            rpe=rpe,
            mask=self.mask,
            causal=self.causal,
        )[real]
        return torch.empty_like(out).index_copy_(0, perm, out)

    def feature_maps(
        self, q: Tensor, k: Tensor, pos: Tensor, batch: Tensor, num_graphs: int
    ) -> tuple[Tensor, Tensor]:
        r"""Positive feature maps with :math:`\phi_Q(i)\cdot\phi_K(j) \propto w_{ij}` in expectation.

        Queries are shifted per row, keys per graph (bidirectional) or by a fixed bound
        (causal, so no token sees later ones); the shifts cancel in normalised attention.
        ``pos`` must already be centred per graph.

        Returns:
            ``(phi_q, phi_k)``, each ``[N, H, F]`` with ``F = m`` (``exp``) or ``m (2R + 1)``.
        """
        scale = self.head_channels**-0.25
        xq, xk = q * scale, k * scale
        psi = None if self.spectrum is None else self.spectrum.features(pos)
        if psi is not None and self.mask == "exp":
            xq = torch.cat([xq, psi[0]], dim=-1)
            xk = torch.cat([xk, psi[1]], dim=-1)
        phi_q, _ = positive_features(xq, self.projection)
        if self.causal:
            shift = causal_shift(self.projection, xk.dtype).unsqueeze(0)
            phi_k, _ = positive_features(xk, self.projection, shift=shift)
        else:
            phi_k, _ = positive_features(xk, self.projection, index=batch, num_segments=num_graphs)
        if psi is not None and self.mask == "mul":
            shift = self.mul_shift().to(q.dtype).sqrt().expand(q.shape[0], -1).unsqueeze(-1)
            psi_q = torch.cat([shift, psi[0]], dim=-1)
            psi_k = torch.cat([shift, psi[1]], dim=-1)
            phi_q = (phi_q.unsqueeze(-1) * psi_q.unsqueeze(-2)).flatten(-2)
            phi_k = (phi_k.unsqueeze(-1) * psi_k.unsqueeze(-2)).flatten(-2)
        return phi_q, phi_k

    def kernel(self, q: Tensor, k: Tensor, pos: Tensor) -> Tensor:
        r"""The unnormalised attention weights :math:`w_{ij}` of one graph, ``[N, N, H]``.

        In exact mode the weights of the class formula; in linear mode their random-feature
        estimate with the shifts undone, an unbiased estimate of the former. Dense: for tests
        and plots on small inputs. The causal mask is not applied.
        """
        self._check_inputs(q, k, k, pos)
        batch, num_graphs = check_batch(None, q.shape[0], q.device)
        pos = center_pos(pos.to(q.dtype), batch, num_graphs)
        if self.attention == "exact":
            logits = torch.einsum("ihd,jhd->ijh", q, k) / self.head_channels**0.5
            rpe = self.rpe(pos.unsqueeze(1) - pos.unsqueeze(0))
            return torch.exp(logits + rpe) if self.mask == "exp" else torch.exp(logits) * rpe
        scale = self.head_channels**-0.25
        xq, xk = q * scale, k * scale
        psi = None if self.spectrum is None else self.spectrum.features(pos)
        if psi is not None and self.mask == "exp":
            xq = torch.cat([xq, psi[0]], dim=-1)
            xk = torch.cat([xk, psi[1]], dim=-1)
        phi_q, shift_q = positive_features(xq, self.projection)
        phi_k, shift_k = positive_features(xk, self.projection)
        w = torch.einsum("ihm,jhm->ijh", phi_q, phi_k)
        w = w * torch.exp(shift_q.squeeze(-1).unsqueeze(1) + shift_k.squeeze(-1).unsqueeze(0))
        return (
            w
            if psi is None or self.mask == "exp"
            else w * self.rpe(pos.unsqueeze(1) - pos.unsqueeze(0))
        )

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
        if not bool(torch.isfinite(pos).all()):
            raise ValueError("pos contains NaN or infinite coordinates")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(heads={self.heads}, head_channels={self.head_channels}, "
            f"pos_dim={self.pos_dim}, spectrum={self.spectrum_name!r}, mask={self.mask!r}, "
            f"num_features={self.num_features}, attention={self.attention!r}, "
            f"causal={self.causal}"
            + (", closed_form_rpe=True" if self.closed_form_rpe else "")
            + ")"
        )
