"""The FLT block stack of the ready models: its blocks built from a model's ``config``, its pass
on inputs checked once, and the model base that reads its attention mode and resets it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from flt3d.nn.flt_block import FLTBlock
from flt3d.nn.graph import GraphSizes

__all__ = ["BLOCK_OPTIONS", "BlockModel", "block_stack", "checked_pass"]

#: the block options the models name as :class:`~flt3d.nn.FLTBlock` does, passed through from
#: a model's ``config`` where it has them
BLOCK_OPTIONS = (
    "heads",
    "mlp_ratio",
    "dropout",
    "attention",
    "mask",
    "num_features",
    "num_frequencies",
    "length_scale",
    "closed_form_rpe",
    "long_range",
    "long_range_length_scale",
    "sampler",
    "nodes",
    "redraw",
    "spectral_filter",
    "filter_spectrum",
    "long_range_filter",
)


def block_stack(
    config: Mapping[str, Any], *, pos_dim: int, spectrum: str | None, **options: Any
) -> nn.ModuleList:
    """``config["num_layers"]`` :class:`~flt3d.nn.FLTBlock` of width ``config["hidden_channels"]``
    with the attention ``spectrum``.

    Each block takes the :data:`BLOCK_OPTIONS` the config has, and a config's ``cutoff`` as the
    short range of the filters and of the attention RPE (where there is one: a ``spectrum``);
    ``options`` come on top, replacing those.
    """
    shared = {name: config[name] for name in BLOCK_OPTIONS if name in config}
    if "cutoff" in config:
        shared["cutoff"] = config["cutoff"] if spectrum is not None else None
        shared["filter_cutoff"] = config["cutoff"]
    shared.update(options, pos_dim=pos_dim, spectrum=spectrum)
    channels = config["hidden_channels"]
    return nn.ModuleList(FLTBlock(channels, **shared) for _ in range(config["num_layers"]))


def checked_pass(
    blocks: nn.ModuleList, h: Tensor, pos: Tensor, batch: Tensor, sizes: GraphSizes
) -> Tensor:
    """``blocks`` one after the other on inputs checked once for all of them (``validate=False``),
    with the batch's sizes read once (``sizes``)."""
    checked = {"num_graphs": sizes.num_graphs, "validate": False, "sizes": sizes}
    for block in blocks:
        h = block(h, pos, batch, **checked)
    return h


class BlockModel(nn.Module):
    """Base of the ready models: FLT blocks (``blocks``, see :func:`block_stack`) and the
    ``norm`` after them."""

    blocks: nn.ModuleList
    norm: nn.LayerNorm

    @property
    def attention(self) -> str:
        """``"linear"`` or ``"exact"``, of the first block (see :func:`flt3d.nn.set_attention`)."""
        return self.blocks[0].conv.attention

    def reset_blocks(self) -> None:
        """Reset the blocks (their random features redrawn) and the norm after them."""
        for block in self.blocks:
            block.reset_parameters()
        self.norm.reset_parameters()
