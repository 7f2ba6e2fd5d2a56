r"""Forces and stress of an FLTNet energy by autograd: :math:`F = -\partial E / \partial r`, and the
stress as the derivative under a homogeneous strain of positions and cell."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from flt3d.nn.graph import check_batch
from flt3d.nn.pairs import differentiable_pair_sums

if TYPE_CHECKING:
    from flt3d.models.fltnet import FLTNet


def energy_and_forces(
    model: FLTNet,
    z: Tensor,
    pos: Tensor,
    batch: Tensor | None,
    *,
    cell: Tensor | None,
    pbc: Tensor | bool | None,
    stress: bool,
    create_graph: bool | None,
    num_graphs: int | None,
) -> tuple[Tensor, ...]:
    """:meth:`FLTNet.energy_and_forces`: ``(energy, forces)``, and the stress with ``stress``."""
    if model.head_name != "extensive" or model.config["out_channels"] != 1:
        raise ValueError(
            "forces need an energy: the 'extensive' head with out_channels=1, got head "
            f"{model.head_name!r} with out_channels={model.config['out_channels']}"
        )
    if create_graph is None:
        create_graph = model.training
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
        energy = model(z, strained_pos, batch, cell=strained_cell, pbc=pbc, num_graphs=num_graphs)
        grads = torch.autograd.grad(energy.sum(), inputs, create_graph=create_graph)
    if not create_graph:
        energy = energy.detach()
    if not stress:
        return energy, -grads[0]
    volume = torch.linalg.det(cells).abs().view(-1, 1, 1)
    virial = grads[1]
    return energy, -grads[0], 0.5 * (virial + virial.transpose(1, 2)) / volume
