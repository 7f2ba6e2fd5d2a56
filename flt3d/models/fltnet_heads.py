"""FLTNet's heads, what it reads from its final representation: the atomistic head its target
chooses, and the long-range energy of latent charges (see :class:`~flt3d.nn.LatentCharges`)
added to the ``extensive`` head's energy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flt3d.atomistic import HEADS
from flt3d.datasets.qm9 import head_for_target
from flt3d.nn.latent_charges import LatentCharges


def head_name(target: str | int, head: str | None) -> str:
    """The head of FLTNet's ``head`` argument: one of :data:`~flt3d.atomistic.HEADS`, chosen from
    ``target`` for ``None`` (see :func:`flt3d.datasets.qm9.head_for_target`).

    Example:
        >>> head_name("U0", None), head_name("anything", "intensive")
        ('extensive', 'intensive')
    """
    if head is None:
        return head_for_target(target)
    if head not in HEADS:
        raise ValueError(f"head must be one of {sorted(HEADS)} or None, got {head!r}")
    return head


def charges_term(config: Mapping[str, Any]) -> LatentCharges | None:
    """The :class:`~flt3d.nn.LatentCharges` of the FLTNet of ``config`` (``None`` with
    ``latent_charges=0``), with the length scale of its long-range parts and its attention
    mode, sampler, nodes and redraw."""
    if not config["latent_charges"]:
        return None
    head, out_channels = config["head"], config["out_channels"]
    if head != "extensive" or out_channels != 1:
        raise ValueError(
            "latent_charges add an energy: they need the 'extensive' head with "
            f"out_channels=1, got head {head!r} with out_channels={out_channels}"
        )
    return LatentCharges(
        config["hidden_channels"],
        config["latent_charges"],
        spectrum=config["charges_spectrum"],
        length_scale=config["long_range_length_scale"],
        num_frequencies=config["num_frequencies"],
        attention=config["attention"],
        sampler=config["sampler"],
        nodes=config["nodes"],
        redraw=config["redraw"],
        neutral=config["neutral_charges"],
    )
