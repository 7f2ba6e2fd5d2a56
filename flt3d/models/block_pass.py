"""The pass through FLTNet's block stack on checked inputs: the neighbour list across periodic
cells (for the local models that accept them), the space ordering of large systems in linear
mode, and the recomputation of each block in the backward pass (activation checkpointing) above
a number of atoms."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from flt3d.nn.graph import graph_sizes
from flt3d.nn.neighbors import neighbor_list, spatial_order

if TYPE_CHECKING:
    from flt3d.models.fltnet import FLTNet


def is_local(config: Mapping[str, Any]) -> bool:
    """Whether the FLTNet of ``config`` sees nothing beyond its cutoff: a cutoff,
    ``far_attention=False`` and no long-range parts (what periodic cells need)."""
    return (
        config["cutoff"] is not None
        and not config["far_attention"]
        and config["long_range"] is None
        and config["long_range_filter"] is None
        and not config.get("latent_charges", 0)
    )


def block_pass(
    model: FLTNet, h, pos, batch, num_graphs, cell, pbc, *, recompute_atoms: int
) -> Tensor:
    """``model``'s blocks and final norm on checked inputs (see :meth:`FLTNet.representation`);
    above ``recompute_atoms`` atoms, with gradients, each block is recomputed in the backward
    pass."""
    neighbors, order = None, None
    cutoff = model.cutoff
    sizes = graph_sizes(batch, num_graphs)  # the one read of the graph sizes
    if cell is not None:
        if not model.local:
            raise ValueError(
                "periodic cells need a local FLTNet: a cutoff, far_attention=False and no "
                "long_range or long_range_filter (attention or sums over one cell's atoms "
                "beyond the cutoff are not periodic functions)"
            )
        neighbors = neighbor_list(
            pos, batch, cutoff=cutoff, cell=cell.to(h.dtype), pbc=pbc, self_loops=True,
            num_graphs=num_graphs,
        )  # fmt: skip
    elif cutoff is not None and model.attention == "linear" and not sizes.small():
        # atoms in the order they lie in space, so that the pair sums' gathers and scatters
        # hit the cache (see spatial_order); one neighbour list for every block (the search
        # itself is not differentiated)
        order = spatial_order(pos, batch, cell_size=cutoff)
        h, pos, batch = h[order], pos[order], batch[order]
        neighbors = neighbor_list(pos, batch, cutoff=cutoff, self_loops=True)
    recompute = torch.is_grad_enabled() and h.shape[0] > recompute_atoms
    # checked once above for every block and branch
    checked = {"neighbors": neighbors, "num_graphs": num_graphs, "validate": False, "sizes": sizes}
    for block in model.blocks:
        if recompute:  # large systems: keep each block's input only, recompute the rest
            h = checkpoint(block, h, pos, batch, use_reentrant=False, **checked)
        else:
            h = block(h, pos, batch, **checked)
    h = model.norm(h)
    return h if order is None else h[torch.argsort(order)]
