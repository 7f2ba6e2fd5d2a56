r"""FLTNet: a molecular property model from FLT blocks on 3D coordinates and an atomistic head.

.. math::
    h^{(0)}_i = E[z_i], \qquad
    h^{(l+1)} = \mathrm{FLTBlock}_l(h^{(l)}, \mathrm{pos}, \mathrm{batch}), \qquad
    y_G = \mathrm{head}(\mathrm{LN}(h^{(L)}), z, \mathrm{pos}, \mathrm{batch})_G

Geometry enters through learned spectral functions of the displacements :math:`r_i - r_j`:
the RPE of the attention (a bias on its logits) and the spectral filters beside it (an
unnormalised sum :math:`\sum_j f_c(\lVert r_i - r_j\rVert)\,u_{jc}`, one filter per channel,
whose radial basis is learned through its Fourier spectrum). Both are short-range by default:
the learned closed forms times a smooth cutoff envelope, evaluated on a neighbour list in linear
mode and over all pairs in exact mode, so the two modes compute the same function there; pairs
beyond the cutoff meet through the attention's content kernel (and an optional low-rank
long-range RPE), estimated with random features in linear mode. The output is invariant to
translations and permutations of the atoms, exactly, and to rotations exactly in exact mode;
in linear mode the random features are rotation invariant in expectation only (their error,
and so the rotation error, is measured in the tests).
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from flt3d.atomistic import (
    HEADS,
    MAX_Z,
    SYMBOLS,
    AtomwiseHead,
    HeadStatistics,
    atomic_number,
    element_symbol,
    make_head,
)
from flt3d.datasets.qm9 import TARGETS, head_for_target, target_index
from flt3d.models._common import block_stack, check_dropout, check_positive
from flt3d.nn.graph import check_batch, check_finite, graph_sizes
from flt3d.nn.latent_charges import LatentCharges
from flt3d.nn.neighbors import neighbor_list, spatial_order
from flt3d.nn.pairs import differentiable_pair_sums

__all__ = ["FLTNet", "fit_statistics"]

#: above this many atoms, training recomputes each block in the backward pass (activation
#: checkpointing), so memory holds one block's intermediates rather than all of them
RECOMPUTE_ATOMS = 1 << 16

def _element_numbers(elements: Iterable[int | str]) -> list[int]:
    if isinstance(elements, (str, bytes)):
        raise ValueError(f"elements must be a sequence of elements, got {elements!r}")
    numbers = []
    for element in elements:
        if isinstance(element, str):
            numbers.append(atomic_number(element))
        else:
            element_symbol(element)  # raises ValueError outside 1..118
            numbers.append(operator.index(element))
    if not numbers or len(set(numbers)) != len(numbers):
        raise ValueError(f"elements must be non-empty and without repeats, got {list(elements)}")
    return numbers


def _plain(value):
    """A constructor argument as JSON/YAML-friendly Python values (tensors become lists)."""
    if isinstance(value, Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, dict):
        # element keys as symbols: JSON would turn integer keys into strings anyway
        return {
            key if isinstance(key, str) else element_symbol(key): _plain(v)
            for key, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class FLTNet(nn.Module):
    r"""Molecular property model: element embedding, FLT blocks on 3D coordinates, a head.

    Same call as PyG's ``SchNet``: ``model(z, pos, batch)`` → one row per molecule, in the
    target's units (QM9 units for QM9 targets: D, a0³, eV, a0², cal/(mol K)).

    Args:
        hidden_channels: feature width (default ``128``).
        num_layers: FLT blocks (default ``4``).
        heads: attention heads (default ``8``).
        target: QM9 target name (case-insensitive) or index (default ``"U0"``); any label when
            ``head`` is given.
        out_channels: outputs per molecule (default ``1``).
        head: ``"extensive"``, ``"intensive"``, ``"dipole"`` or ``"spatial_extent"``; default
            chosen from ``target`` (see :func:`flt3d.datasets.qm9.head_for_target`).
        attention: ``"exact"`` (default; the faster choice at QM9 size) or ``"linear"``;
            switch later with :func:`flt3d.nn.set_attention`.
        spectrum: spectral family of the RPE (default ``"isotropic_mixture"``).
        mask: ``"exp"`` or ``"mul"`` (default ``"exp"``).
        num_features: random features of the linear mode (default ``64``).
        num_frequencies: RPE frequencies (default ``16``).
        length_scale: shortest length the RPE and the filters resolve, in Å (default ``0.18``).
        closed_form_rpe: without a cutoff, exact mode applies the attention spectrum's
            closed form :math:`f` rather than its ``num_frequencies`` estimate :math:`\hat f`
            (default ``False``; see :class:`~flt3d.nn.FLTAttention`).
        cutoff: in Å, the range of the exact short range of the attention RPE and of the
            spectral filters (default ``5.0``): within it, both are the learned closed forms
            times a cosine envelope, computed on a neighbour list in linear mode (O(N k)) and
            over all pairs in exact mode, the same function. ``None``: global low-rank
            functions (the filters' bumps then have too much spectral mass for linear mode).
        long_range: spectral family of the attention's low-rank long-range RPE beyond the
            cutoff (default ``None``: none; e.g. ``"isotropic_mixture"``).
        long_range_length_scale: its length scale in Å (default ``2.0``).
        far_temperature: factor on the content logits of pairs beyond the cutoff, blended
            smoothly to 1 within it (default ``0.1``; see :class:`~flt3d.nn.FLTAttention`):
            the random features of linear mode estimate the far pairs' kernel with far less
            variance (after the default ``flt3d train``, linear vs exact representation at
            m = 64: 3.8% with 0.1, 7.5% with 0.25, 20% with 1.0; test MAE 0.212 / 0.215 /
            0.237 eV, one seed each).
        far_attention: attend beyond the cutoff (default ``True``: the content kernel,
            estimated with random features in linear mode). ``False``: attention within the
            cutoff only, weighed by the envelope (a local model, like SchNet's interactions;
            see ``far`` in :class:`~flt3d.nn.FLTAttention`); needs a cutoff and no
            ``long_range``.
        sampler: frequency sampler of the low-rank parts (default ``"density"``: draws from
            the learned density itself, where the family allows).
        nodes: node layout of those draws (default ``"quadrature"``: stratified radii and
            evenly spread directions, randomly rotated; see :mod:`flt3d.nn.samplers`).
        redraw: ``"train"`` (default: fresh random features and frequencies at every
            training step, the stored draw in eval mode) or ``"never"``.
        spectral_filter: add the spectral filter branch to every block, an unnormalised sum
            :math:`\sum_j f_c(r_i - r_j) u_j` beside the attention (see :class:`~flt3d.nn.FLTConv`
            and :class:`~flt3d.nn.SpectralFilter`) (default ``True``). Softmax attention
            averages, so without it the model cannot count neighbours; on QM9 it is what lets
            the model learn chemistry quickly (``benchmarks/qm9_budget.py``).
        filter_heads: filters of that branch (default ``hidden_channels``: one per channel,
            as in SchNet).
        filter_spectrum: their spectral family (default ``"radial_basis"``: Gaussian bumps in
            distance learned through their spectra; see :class:`~flt3d.nn.RadialBasis`).
        long_range_filter: spectral family of a global low-rank filter branch in every block
            (default ``None``: none; e.g. ``"isotropic_mixture"``), summing a smooth function
            of :math:`r_i - r_j` over every atom of the structure at O(N) cost in linear mode,
            with length scale ``long_range_length_scale``: what reaches past the cutoff
            (charges, polarisation). See :class:`~flt3d.nn.FLTConv`.
        latent_charges: number of latent charges per atom of a long-range energy term
            (default ``0``: none; needs the ``extensive`` head with one output), read from the
            final representation and interacting through learned smooth kernels over every
            atom of the structure, with length scale ``long_range_length_scale``, O(N) in
            linear mode (see :class:`~flt3d.nn.LatentCharges`): electrostatics beyond the
            cutoff, added to the head's energy (in eV; see :class:`~flt3d.nn.LatentCharges`).
        charges_spectrum: the latent charges' kernel family (default
            ``"isotropic_mixture"``: Gaussians in distance; ``"coulomb"``:
            :class:`~flt3d.nn.CoulombKernel`, :math:`1/r` at every range beyond a learned
            smoothing length).
        elements: allowed elements, atomic numbers or symbols (default H, C, N, O, F).
        mean: target mean (or per-atom mean for extensive heads) (default ``0.0``).
        std: target std (or per-atom std) (default ``1.0``).
        atomref: per-element references, ``[Z]``/``[Z, out]`` by atomic number or a dict
            (default none).
        dropout: dropout in the blocks (default ``0.0``).
        mlp_ratio: MLP width of the blocks over ``hidden_channels`` (default ``2.0``).

    Shapes:
        - **input:** z ``[N]`` long, pos ``[N, 3]`` (Å), batch ``[N]`` (optional),
          ``num_graphs`` ``G`` (optional, as PyG's ``Batch.num_graphs``; default
          ``batch.max() + 1``). A graph no atom belongs to gets the head's empty value: 0 for
          energies and dipoles, the target's mean for intensive properties.
        - **output:** ``[G, out_channels]``.

    Example:
        >>> import torch
        >>> model = FLTNet(hidden_channels=16, num_layers=1, heads=2)
        >>> model
        FLTNet(16, num_layers=1, heads=2, target='U0', head='extensive', attention='exact')
        >>> z = torch.tensor([8, 1, 1]); pos = torch.randn(3, 3)
        >>> model(z, pos).shape
        torch.Size([1, 1])
    """

    def __init__(
        self,
        *,
        hidden_channels: int = 128,
        num_layers: int = 4,
        heads: int = 8,
        target: str | int = "U0",
        out_channels: int = 1,
        head: str | None = None,
        attention: str = "exact",
        spectrum: str | None = "isotropic_mixture",
        mask: str = "exp",
        num_features: int = 64,
        num_frequencies: int = 16,
        length_scale: float = 0.18,
        closed_form_rpe: bool = False,
        cutoff: float | None = 5.0,
        long_range: str | None = None,
        long_range_length_scale: float = 2.0,
        far_temperature: float = 0.1,
        far_attention: bool = True,
        sampler: str = "density",
        nodes: str = "quadrature",
        redraw: str = "train",
        spectral_filter: bool = True,
        filter_heads: int | None = None,
        filter_spectrum: str | None = "radial_basis",
        long_range_filter: str | None = None,
        latent_charges: int = 0,
        charges_spectrum: str = "isotropic_mixture",
        elements: Sequence[int | str] = (1, 6, 7, 8, 9),
        mean: float | Sequence[float] = 0.0,
        std: float | Sequence[float] = 1.0,
        atomref: Tensor | Sequence | dict | None = None,
        dropout: float = 0.0,
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        check_positive(
            hidden_channels=hidden_channels,
            num_layers=num_layers,
            heads=heads,
            out_channels=out_channels,
        )
        dropout = check_dropout(dropout)
        if head is None:
            head = head_for_target(target)
        elif head not in HEADS:
            raise ValueError(f"head must be one of {sorted(HEADS)} or None, got {head!r}")
        numbers = _element_numbers(elements)
        self.config = {
            "hidden_channels": hidden_channels,
            "num_layers": num_layers,
            "heads": heads,
            "target": target,
            "out_channels": out_channels,
            "head": head,
            "attention": attention,
            "spectrum": spectrum,
            "mask": mask,
            "num_features": num_features,
            "num_frequencies": num_frequencies,
            "length_scale": float(length_scale),
            "closed_form_rpe": bool(closed_form_rpe),
            "cutoff": None if cutoff is None else float(cutoff),
            "long_range": long_range,
            "long_range_length_scale": float(long_range_length_scale),
            "far_temperature": float(far_temperature),
            "far_attention": bool(far_attention),
            "sampler": sampler,
            "nodes": nodes,
            "redraw": redraw,
            "spectral_filter": bool(spectral_filter),
            "filter_heads": filter_heads,
            "filter_spectrum": filter_spectrum,
            "long_range_filter": long_range_filter,
            "latent_charges": int(latent_charges),
            "charges_spectrum": charges_spectrum,
            "elements": numbers,
            "mean": _plain(mean),
            "std": _plain(std),
            "atomref": _plain(atomref),
            "dropout": dropout,
            "mlp_ratio": float(mlp_ratio),
        }
        self.hidden_channels = hidden_channels
        self.num_layers = num_layers
        self.heads = heads
        self.target = target
        self.head_name = head

        rows = torch.full((MAX_Z + 1,), -1, dtype=torch.long)
        rows[torch.tensor(numbers)] = torch.arange(len(numbers))
        self.register_buffer("element_rows", rows)
        self.embedding = nn.Embedding(len(numbers), hidden_channels)
        self.blocks = block_stack(
            hidden_channels,
            num_layers,
            heads=heads,
            pos_dim=3,
            mlp_ratio=mlp_ratio,
            dropout=dropout,
            attention=attention,
            spectrum=spectrum,
            mask=mask,
            num_features=num_features,
            num_frequencies=num_frequencies,
            length_scale=length_scale,
            closed_form_rpe=closed_form_rpe,
            cutoff=cutoff if spectrum is not None else None,
            filter_cutoff=cutoff,
            long_range=long_range,
            long_range_length_scale=long_range_length_scale,
            far_temperature=(
                far_temperature if spectrum is not None and cutoff and far_attention else 1.0
            ),
            **({} if far_attention else {"far": None}),
            sampler=sampler,
            nodes=nodes,
            redraw=redraw,
            spectral_filter=spectral_filter,
            filter_heads=hidden_channels if filter_heads is None else filter_heads,
            filter_spectrum=filter_spectrum,
            long_range_filter=long_range_filter,
        )
        self.norm = nn.LayerNorm(hidden_channels)
        self.head: AtomwiseHead = make_head(
            head, hidden_channels, out_channels=out_channels, mean=mean, std=std, atomref=atomref
        )
        self.charges: LatentCharges | None = None
        if latent_charges:
            if head != "extensive" or out_channels != 1:
                raise ValueError(
                    "latent_charges add an energy: they need the 'extensive' head with "
                    f"out_channels=1, got head {head!r} with out_channels={out_channels}"
                )
            self.charges = LatentCharges(
                hidden_channels,
                latent_charges,
                spectrum=charges_spectrum,
                length_scale=long_range_length_scale,
                num_frequencies=num_frequencies,
                attention=attention,
                sampler=sampler,
                nodes=nodes,
                redraw=redraw,
            )
        self.reset_parameters()

    @property
    def elements(self) -> list[int]:
        """Atomic numbers the model embeds, in row order."""
        rows = self.element_rows
        numbers = torch.nonzero(rows >= 0).flatten()
        return numbers[torch.argsort(rows[numbers])].tolist()

    @property
    def attention(self) -> str:
        """``"exact"`` or ``"linear"``, of the first block (see :func:`flt3d.nn.set_attention`)."""
        return self.blocks[0].conv.attention

    def reset_parameters(self) -> None:
        """Reset embedding, blocks and head MLP (statistics and references are kept)."""
        self.embedding.reset_parameters()
        for block in self.blocks:
            block.reset_parameters()
        self.norm.reset_parameters()
        self.head.reset_parameters()
        if self.charges is not None:
            self.charges.reset_parameters()

    def set_statistics(
        self,
        mean: float | Tensor,
        std: float | Tensor,
        atomref: Tensor | dict | None = None,
    ) -> None:
        """Set the head's target statistics and per-element references (see the head's docs).

        Args:
            mean: target mean (per-atom for extensive heads).
            std: target std (per-atom for extensive heads), positive.
            atomref: per-element references, or ``None`` for none.
        """
        self.head.set_statistics(mean, std, atomref)

    def embed(self, z: Tensor) -> Tensor:
        """Element embedding ``[N, hidden_channels]``; raises naming unknown elements."""
        if not isinstance(z, Tensor) or z.dim() != 1 or z.dtype != torch.long:
            shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(f"z must be [N] long atomic numbers, got {shape}")
        valid = (z >= 1) & (z <= MAX_Z)
        rows = self.element_rows[z.clamp(0, MAX_Z)]
        bad = ~valid | (rows < 0)
        if bool(bad.any()):
            unknown = sorted(set(z[bad].tolist()))
            names = ", ".join(
                f"{SYMBOLS[n]} (Z={n})" if 1 <= n <= MAX_Z else f"Z={n}" for n in unknown
            )
            allowed = ", ".join(SYMBOLS[n] for n in self.elements)
            raise ValueError(f"element(s) {names} not in the model's elements {allowed}")
        return self.embedding(rows)

    @property
    def local(self) -> bool:
        """Whether the model sees nothing beyond its cutoff (``far_attention=False``, no
        long-range parts): the models that periodic cells accept."""
        c = self.config
        return (
            c["cutoff"] is not None
            and not c["far_attention"]
            and c["long_range"] is None
            and c["long_range_filter"] is None
            and not c.get("latent_charges", 0)
        )

    def representation(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor | None = None,
        *,
        cell: Tensor | None = None,
        pbc: Tensor | bool | None = None,
        num_graphs: int | None = None,
    ) -> Tensor:
        """Per-atom features after the blocks and the final norm, ``[N, hidden_channels]``.

        With ``cell`` (``[3, 3]`` or one per graph, ``[G, 3, 3]``, rows the cell vectors) and
        ``pbc`` (periodic axes, default all), pairs are found across the periodic boundaries
        (images within the cutoff included); this needs a local model (:attr:`local`).
        """
        h, pos, batch, num_graphs = self._checked(z, pos, batch, num_graphs)
        return self._blocks(h, pos, batch, num_graphs, cell, pbc)

    def _checked(self, z, pos, batch, num_graphs) -> tuple[Tensor, Tensor, Tensor, int]:
        # the element embedding and every check that reads values, once per forward
        h = self.embed(z)  # checks the elements
        if not isinstance(pos, Tensor) or pos.shape != (z.shape[0], 3):
            shape = tuple(pos.shape) if isinstance(pos, Tensor) else type(pos).__name__
            raise ValueError(f"pos must be [N, 3] = [{z.shape[0]}, 3], got {shape}")
        check_finite(pos)
        batch, num_graphs = check_batch(batch, z.shape[0], z.device, num_graphs)
        return h, pos.to(h.dtype), batch, num_graphs

    def _blocks(self, h, pos, batch, num_graphs, cell, pbc) -> Tensor:
        # the blocks and the final norm, on checked inputs
        neighbors, order = None, None
        cutoff = self.cutoff
        sizes = graph_sizes(batch, num_graphs)  # the one read of the graph sizes
        if cell is not None:
            if not self.local:
                raise ValueError(
                    "periodic cells need a local FLTNet: a cutoff, far_attention=False and no "
                    "long_range or long_range_filter (attention or sums over one cell's atoms "
                    "beyond the cutoff are not periodic functions)"
                )
            neighbors = neighbor_list(
                pos, batch, cutoff=cutoff, cell=cell.to(h.dtype), pbc=pbc, self_loops=True,
                num_graphs=num_graphs,
            )  # fmt: skip
        elif (
            cutoff is not None
            and self.attention == "linear"
            and not sizes.small()
        ):
            # atoms in the order they lie in space, so that the pair sums' gathers and scatters
            # hit the cache (see spatial_order); one neighbour list for every block (the search
            # itself is not differentiated)
            order = spatial_order(pos, batch, cell_size=cutoff)
            h, pos, batch = h[order], pos[order], batch[order]
            neighbors = neighbor_list(pos, batch, cutoff=cutoff, self_loops=True)
        recompute = torch.is_grad_enabled() and h.shape[0] > RECOMPUTE_ATOMS
        # checked once above for every block and branch
        checked = {"neighbors": neighbors, "num_graphs": num_graphs, "validate": False, "sizes": sizes}
        for block in self.blocks:
            if recompute:  # large systems: keep each block's input only, recompute the rest
                h = checkpoint(block, h, pos, batch, use_reentrant=False, **checked)
            else:
                h = block(h, pos, batch, **checked)
        h = self.norm(h)
        return h if order is None else h[torch.argsort(order)]

    @property
    def cutoff(self) -> float | None:
        """The short-range cutoff in Å (``None`` without one)."""
        return self.blocks[0].conv.cutoff

    def forward(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor | None = None,
        *,
        cell: Tensor | None = None,
        pbc: Tensor | bool | None = None,
        num_graphs: int | None = None,
    ) -> Tensor:
        """Predict per molecule (or periodic structure, with ``cell``; see
        :meth:`representation`); see the class docstring for shapes."""
        h, pos, batch, num_graphs = self._checked(z, pos, batch, num_graphs)
        h = self._blocks(h, pos, batch, num_graphs, cell, pbc)
        # the head's own checks (shapes, elements, graph ids) were made above
        y = self.head.reduce(self.head.atomwise(h, z), z, pos, batch, num_graphs)
        if self.charges is not None:
            y = y + self.charges(h, pos, batch, num_graphs=num_graphs)
        return y

    @torch.no_grad()
    def linear_error(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor | None = None,
        *,
        draws: int = 4,
        seed: int = 0,
    ) -> dict[str, float]:
        """How far linear mode is from exact mode on these inputs, with these parameters.

        The relative difference ``|h_linear - h_exact| / |h_exact|`` of the per-atom
        representation (what the head reads) and the mean absolute difference of the
        predictions, over ``draws`` fresh draws of the random features and frequencies (the
        stored draw is put back afterwards). A diagnostic for a trained model: the estimator's
        error in the regime the model really works in.

        Returns:
            ``{"representation_mean", "representation_max", "prediction_mae"}``.
        """
        from flt3d.nn import FLTAttention, SpectralFilter, set_attention

        layers = [m for m in self.modules() if isinstance(m, (FLTAttention, SpectralFilter))]
        modes = [m.attention for m in layers]
        saved = {name: b.clone() for name, b in self.named_buffers()}
        was_training = self.training
        self.eval()
        try:
            set_attention(self, "exact")
            exact_h, exact_y = self.representation(z, pos, batch), self(z, pos, batch)
            set_attention(self, "linear")
            errors, pred = [], []
            for k in range(draws):
                gen = torch.Generator().manual_seed(seed + k)
                for m in layers:
                    if isinstance(m, FLTAttention):
                        m.redraw_features(generator=gen)
                        m.redraw_frequencies(generator=gen)
                    elif m.cutoff is None:
                        m.spectrum.redraw_frequencies(generator=gen)
                h = self.representation(z, pos, batch)
                errors.append(float((h - exact_h).norm() / exact_h.norm().clamp_min(1e-30)))
                pred.append(float((self(z, pos, batch) - exact_y).abs().mean()))
        finally:
            for name, b in self.named_buffers():
                b.copy_(saved[name])
            for m, mode in zip(layers, modes):
                m.attention = mode
            self.train(was_training)
        return {
            "representation_mean": sum(errors) / len(errors),
            "representation_max": max(errors),
            "prediction_mae": sum(pred) / len(pred),
        }

    def energy_and_forces(
        self,
        z: Tensor,
        pos: Tensor,
        batch: Tensor | None = None,
        *,
        cell: Tensor | None = None,
        pbc: Tensor | bool | None = None,
        stress: bool = False,
        create_graph: bool | None = None,
        num_graphs: int | None = None,
    ) -> tuple[Tensor, ...]:
        r"""Energies and the forces :math:`F = -\partial E / \partial r`, by autograd.

        The forces are the exact gradient of the energy the model computes (neighbour list,
        cutoff envelopes and random features included: in eval mode the stored draws are
        fixed), so they are conservative. Needs the ``extensive`` head with one output.

        Args:
            z: atomic numbers ``[N]``.
            pos: coordinates ``[N, 3]`` in Å.
            batch: graph id per atom ``[N]`` (optional).
            cell: periodic cell, ``[3, 3]`` or ``[G, 3, 3]`` (a local model; see
                :meth:`representation`).
            pbc: periodic axes (default all, with a cell).
            stress: also return the stress :math:`\sigma = V^{-1}\,\partial E/\partial
                \varepsilon` (eV/Å³, ``[G, 3, 3]``), the derivative under a homogeneous strain
                of positions and cell; needs a cell.
            create_graph: keep the graph of the forces, so a loss on them can be
                differentiated (default: in training mode).
            num_graphs: ``G`` (default ``batch.max() + 1``; see the class shapes).

        Returns:
            ``(energy [G, 1], forces [N, 3])``, and ``stress [G, 3, 3]`` with ``stress``;
            detached unless ``create_graph``.

        Example:
            >>> import torch
            >>> model = FLTNet(hidden_channels=16, num_layers=1, heads=2).eval()
            >>> energy, forces = model.energy_and_forces(
            ...     torch.tensor([8, 1, 1]), torch.randn(3, 3))
            >>> energy.shape, forces.shape
            (torch.Size([1, 1]), torch.Size([3, 3]))
        """
        if self.head_name != "extensive" or self.config["out_channels"] != 1:
            raise ValueError(
                "forces need an energy: the 'extensive' head with out_channels=1, got head "
                f"{self.head_name!r} with out_channels={self.config['out_channels']}"
            )
        if create_graph is None:
            create_graph = self.training
        if not isinstance(pos, Tensor):
            raise ValueError(f"pos must be a [N, 3] tensor, got {type(pos).__name__}")
        if stress and cell is None:
            raise ValueError("stress needs a periodic cell (cell=...)")
        if not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
        batch, num_graphs = check_batch(batch, z.shape[0], z.device, num_graphs)
        # a loss on forces differentiates the backward pass: plain pair sums then
        plain = differentiable_pair_sums() if create_graph else contextlib.nullcontext()
        with torch.enable_grad(), plain:
            inputs = [pos]
            strained_pos, strained_cell = pos, cell
            if stress:
                cells = cell.to(pos.dtype).expand(num_graphs, 3, 3) if cell.dim() == 2 else cell
                strain = torch.zeros_like(cells, requires_grad=True)
                deform = torch.eye(3, dtype=pos.dtype, device=pos.device) + strain
                strained_pos = torch.einsum("nd,nde->ne", pos, deform[batch])
                strained_cell = cells @ deform
                inputs.append(strain)
            energy = self(
                z, strained_pos, batch, cell=strained_cell, pbc=pbc, num_graphs=num_graphs
            )
            grads = torch.autograd.grad(energy.sum(), inputs, create_graph=create_graph)
        if not create_graph:
            energy = energy.detach()
        if not stress:
            return energy, -grads[0]
        volume = torch.linalg.det(cells).abs().view(-1, 1, 1)
        virial = grads[1]
        return energy, -grads[0], 0.5 * (virial + virial.transpose(1, 2)) / volume

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.hidden_channels}, num_layers={self.num_layers}, "
            f"heads={self.heads}, target={self.target!r}, head={self.head_name!r}, "
            f"attention={self.attention!r})"
        )


def _targets(y: Tensor, num_graphs: int, target: str | int | None, out_channels: int) -> Tensor:
    y = y.reshape(num_graphs, -1)
    if y.shape[1] == out_channels:
        return y
    if target is not None and y.shape[1] == len(TARGETS):
        index = target_index(target)
        return y[:, index : index + 1]
    raise ValueError(
        f"cannot take {out_channels} target column(s) from y with {y.shape[1]} columns"
        + ("" if target is None else f" for target {target!r}")
    )


@torch.no_grad()
def fit_statistics(
    model_or_target: FLTNet | AtomwiseHead | str | int,
    data: Iterable,
    *,
    target: str | int | None = None,
) -> HeadStatistics:
    """Target statistics and per-element references from a training set.

    Extensive heads: least-squares per-element references and the mean and std of the
    per-atom residual; intensive heads: the targets' mean and std; ⟨R²⟩: fitted per-element
    weights; dipole: none (mean 0, std 1). See each head's ``fit_statistics``.

    Args:
        model_or_target: an :class:`FLTNet`, a head, or a QM9 target name / index (the head
            is then the one :func:`~flt3d.datasets.qm9.head_for_target` picks, with default
            options).
        data: a dataset (an iterable of PyG ``Data`` with ``z``, ``pos`` and ``y``) or a PyG
            ``DataLoader`` of batches. Pass only the training molecules.
        target: which column of a 12-column QM9 ``y`` to use (default: the model's target).

    Returns:
        :class:`~flt3d.atomistic.HeadStatistics`, float64; apply with
        ``model.set_statistics(*stats)``.

    Example:
        >>> from flt3d.datasets import QM9_SAMPLE_PATH, read_qm9_csv
        >>> stats = fit_statistics("U0", read_qm9_csv(QM9_SAMPLE_PATH, nrows=200))
        >>> round(float(stats.atomref[6, 0]) / 1000, 1)  # eV per carbon, about -1030
        -1.0
    """
    if isinstance(model_or_target, FLTNet):
        head = model_or_target.head
        target = model_or_target.target if target is None else target
    elif isinstance(model_or_target, AtomwiseHead):
        head = model_or_target
    else:
        target = model_or_target if target is None else target
        head = make_head(head_for_target(model_or_target), 1)
    ys, zs, poss, batches = [], [], [], []
    offset = 0
    for item in data:
        z = item.z.detach().cpu()
        num = int(item.num_graphs) if hasattr(item, "num_graphs") else 1
        batch = getattr(item, "batch", None)
        batch = torch.zeros_like(z) if batch is None else batch.detach().cpu()
        y = item.y.detach().cpu().to(torch.float64)
        ys.append(_targets(y, num, target, head.out_channels))
        zs.append(z)
        poss.append(item.pos.detach().cpu().to(torch.float64))
        batches.append(batch + offset)
        offset += num
    if offset == 0:
        raise ValueError("fit_statistics needs at least one molecule, got an empty data set")
    return head.fit_statistics(
        torch.cat(ys), torch.cat(zs), torch.cat(poss), torch.cat(batches), num_graphs=offset
    )
