"""The option names FLT layers share: computation modes, redraw policies, masks, far fields.

:class:`~flt3d.nn.FLTAttention` and :class:`~flt3d.nn.SpectralFilter` both check their options
against these tuples, and :func:`flt3d.nn.set_attention` / :func:`flt3d.nn.set_redraw` switch
between them.
"""

__all__ = ["ATTENTIONS", "FARS", "MASKS", "REDRAWS"]

#: the computation modes every FLT layer understands (see :func:`flt3d.nn.set_attention`)
ATTENTIONS = ("linear", "exact")
#: when random features and frequencies are drawn anew
REDRAWS = ("never", "train")
#: how the RPE enters the attention weights: in the exponent, or as a multiplicative mask
MASKS = ("exp", "mul")
#: what attends beyond the cutoff: the content kernel, or nothing (a local attention)
FARS = ("kernel", None)
