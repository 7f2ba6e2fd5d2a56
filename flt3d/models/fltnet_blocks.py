"""FLTNet's block stack: how its arguments become the options of its FLT blocks (the cutoff's
short range, the far pairs' temperature, a local model without far attention, one filter per
channel by default)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from flt3d.models.blocks import block_stack


def fltnet_blocks(config: Mapping[str, Any]) -> nn.ModuleList:
    """The FLT blocks of the FLTNet of ``config`` (see :class:`~flt3d.models.FLTNet`'s
    arguments): ``far_temperature`` applies to an RPE with a cutoff and far attention (1
    otherwise), ``far_attention=False`` drops the far pairs (``far=None``), and
    ``filter_heads=None`` means one filter per channel."""
    spectrum, cutoff, far_attention = config["spectrum"], config["cutoff"], config["far_attention"]
    filter_heads = config["filter_heads"]
    return block_stack(
        config,
        pos_dim=3,
        spectrum=spectrum,
        far_temperature=(
            config["far_temperature"] if spectrum is not None and cutoff and far_attention else 1.0
        ),
        **({} if far_attention else {"far": None}),
        filter_heads=config["hidden_channels"] if filter_heads is None else filter_heads,
    )
