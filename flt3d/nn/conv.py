"""The earlier import path of the FLT layers: :class:`~flt3d.nn.FLTConv` and what sat beside it.

:class:`~flt3d.nn.FLTConv` lives in :mod:`flt3d.nn.flt_conv`, :class:`~flt3d.nn.FLTBlock` in
:mod:`flt3d.nn.flt_block`, :func:`~flt3d.nn.set_attention` and :func:`~flt3d.nn.set_redraw` in
:mod:`flt3d.nn.switches`; ``from flt3d.nn.conv import ...`` still finds them.
"""

from flt3d.nn.flt_block import FLTBlock
from flt3d.nn.flt_conv import FLTConv
from flt3d.nn.switches import set_attention, set_redraw

__all__ = ["FLTConv", "FLTBlock", "set_attention", "set_redraw"]
