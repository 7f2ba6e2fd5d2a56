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

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from flt3d.atomistic import AtomwiseHead, make_head
from flt3d.models._common import check_dropout, check_positive, constructor_config
from flt3d.models.block_pass import block_pass, is_local
from flt3d.models.blocks import BlockModel
from flt3d.models.element_rows import element_numbers, element_rows, embedding_rows, row_elements
from flt3d.models.fltnet_blocks import fltnet_blocks
from flt3d.models.fltnet_heads import charges_term, head_name
from flt3d.models.forces import energy_and_forces as _energy_and_forces
from flt3d.models.linear_error import linear_error as _linear_error
from flt3d.models.plain import plain
from flt3d.models.statistics import fit_statistics
from flt3d.nn.graph import check_batch, check_finite
from flt3d.nn.latent_charges import LatentCharges

__all__ = ["FLTNet", "fit_statistics"]

#: above this many atoms, training recomputes each block in the backward pass (activation
#: checkpointing), so memory holds one block's intermediates rather than all of them
RECOMPUTE_ATOMS = 1 << 16


class FLTNet(BlockModel):
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
        neutral_charges: each latent charge channel sums to zero in every structure
            (default ``False``; see :class:`~flt3d.nn.LatentCharges`' ``neutral``): for data
            whose structures are all neutral.
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
        neutral_charges: bool = False,
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
        head = head_name(target, head)
        numbers = element_numbers(elements)
        self.config = constructor_config(
            FLTNet,
            locals(),
            latent_charges=int(latent_charges),
            elements=numbers,
            mean=plain(mean),
            std=plain(std),
            atomref=plain(atomref),
        )
        self.hidden_channels = hidden_channels
        self.num_layers = num_layers
        self.heads = heads
        self.target = target
        self.head_name = head

        self.register_buffer("element_rows", element_rows(numbers))
        self.embedding = nn.Embedding(len(numbers), hidden_channels)
        self.blocks = fltnet_blocks(self.config)
        self.norm = nn.LayerNorm(hidden_channels)
        self.head: AtomwiseHead = make_head(
            head, hidden_channels, out_channels=out_channels, mean=mean, std=std, atomref=atomref
        )
        self.charges: LatentCharges | None = charges_term(self.config)
        self.reset_parameters()

    @property
    def elements(self) -> list[int]:
        """Atomic numbers the model embeds, in row order."""
        return row_elements(self.element_rows)

    def reset_parameters(self) -> None:
        """Reset embedding, blocks and head MLP (statistics and references are kept)."""
        self.embedding.reset_parameters()
        self.reset_blocks()
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
        return self.embedding(embedding_rows(self.element_rows, z))

    @property
    def local(self) -> bool:
        """Whether the model sees nothing beyond its cutoff (``far_attention=False``, no
        long-range parts): the models that periodic cells accept."""
        return is_local(self.config)

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
        return self._encode(z, pos, batch, num_graphs, cell, pbc)[0]

    def _encode(self, z, pos, batch, num_graphs, cell, pbc) -> tuple[Tensor, Tensor, Tensor, int]:
        # every check that reads values, once per forward, then the blocks and the final norm
        # (RECOMPUTE_ATOMS read at call time); with the checked pos, batch and num_graphs
        h = self.embed(z)  # checks the elements
        if not isinstance(pos, Tensor) or pos.shape != (z.shape[0], 3):
            shape = tuple(pos.shape) if isinstance(pos, Tensor) else type(pos).__name__
            raise ValueError(f"pos must be [N, 3] = [{z.shape[0]}, 3], got {shape}")
        check_finite(pos)
        batch, num_graphs = check_batch(batch, z.shape[0], z.device, num_graphs)
        pos = pos.to(h.dtype)
        h = block_pass(self, h, pos, batch, num_graphs, cell, pbc, recompute_atoms=RECOMPUTE_ATOMS)
        return h, pos, batch, num_graphs

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
        h, pos, batch, num_graphs = self._encode(z, pos, batch, num_graphs, cell, pbc)
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
        return _linear_error(self, z, pos, batch, draws=draws, seed=seed)

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
        return _energy_and_forces(
            self, z, pos, batch, cell=cell, pbc=pbc, stress=stress, create_graph=create_graph,
            num_graphs=num_graphs,
        )  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.hidden_channels}, num_layers={self.num_layers}, "
            f"heads={self.heads}, target={self.target!r}, head={self.head_name!r}, "
            f"attention={self.attention!r})"
        )
