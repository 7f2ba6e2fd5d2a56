r"""SequenceModel: a causal character language model from FLT blocks on 1D token positions.

.. math::
    h^{(0)}_t = E[x_t]\ (+\,P[t]), \qquad
    h^{(l+1)} = \mathrm{FLTBlock}_l(h^{(l)}, t, \mathrm{seq};\ \text{causal}), \qquad
    \mathrm{logits}_t = W\,\mathrm{LN}(h^{(L)}_t)

Token ``t`` of every sequence sits at coordinate ``t`` (:func:`flt3d.datasets.grid.sequence_grid`)
and attends to tokens ``0..t`` of its own sequence only.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flt3d.datasets.grid import sequence_grid
from flt3d.models._common import (
    attention_spectrum,
    check_dropout,
    check_positive,
    constructor_config,
)
from flt3d.models.blocks import BlockModel, block_stack, checked_pass
from flt3d.nn.graph import GraphSizes

__all__ = ["SequenceModel"]


class SequenceModel(BlockModel):
    r"""Causal character language model with FourierLearner attention.

    ``positional`` chooses how the model knows where a token is:

    - ``"rpe"``: the learned spectral RPE of ``spectrum`` inside the attention (FLT);
    - ``"absolute"``: a learned absolute position embedding added to the token embeddings,
      attention without RPE (the Performer-with-APE baseline; sequences up to ``max_length``);
    - ``"none"``: no positions at all (plain causal Performer; order is seen only through
      the causal mask).

    Args:
        vocab_size: number of token ids ``V``.
        hidden_channels: feature width (default ``128``).
        num_layers: FLT blocks (default ``4``).
        heads: attention heads (default ``8``).
        spectrum: spectral family of the RPE (default ``"local"``); used with
            ``positional="rpe"`` only.
        positional: ``"rpe"``, ``"absolute"`` or ``"none"`` (default ``"rpe"``).
        attention: ``"linear"`` (default) or ``"exact"``.
        num_features: random features of the linear mode (default ``64``).
        num_frequencies: RPE frequencies (default ``16``).
        max_length: longest sequence of the absolute embedding (default ``1024``).
        dropout: dropout on the embeddings and in the blocks (default ``0.0``).
        mask: ``"exp"`` or ``"mul"`` RPE (default ``"exp"``).
        length_scale: shortest distance the RPE resolves, in tokens (default ``1.0``).
        mlp_ratio: MLP width of the blocks over ``hidden_channels`` (default ``2.0``).

    Shapes:
        - **input:** tokens ``[B, L]`` long, in ``[0, V)``.
        - **output:** logits ``[B, L, V]``; position ``t`` predicts token ``t + 1``.

    Example:
        >>> import torch
        >>> model = SequenceModel(12, hidden_channels=16, num_layers=1, heads=2)
        >>> model
        SequenceModel(12, hidden_channels=16, num_layers=1, positional='rpe', attention='linear')
        >>> model(torch.randint(0, 12, (3, 7))).shape
        torch.Size([3, 7, 12])
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        hidden_channels: int = 128,
        num_layers: int = 4,
        heads: int = 8,
        spectrum: str | None = "local",
        positional: str = "rpe",
        attention: str = "linear",
        num_features: int = 64,
        num_frequencies: int = 16,
        max_length: int = 1024,
        dropout: float = 0.0,
        mask: str = "exp",
        length_scale: float = 1.0,
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        check_positive(
            vocab_size=vocab_size,
            hidden_channels=hidden_channels,
            num_layers=num_layers,
            heads=heads,
            max_length=max_length,
        )
        dropout = check_dropout(dropout)
        attention_rpe = attention_spectrum(positional, spectrum)
        self.config = constructor_config(SequenceModel, locals())
        self.vocab_size = vocab_size
        self.hidden_channels = hidden_channels
        self.num_layers = num_layers
        self.positional = positional
        self.max_length = max_length
        self.embedding = nn.Embedding(vocab_size, hidden_channels)
        self.position_embedding = (
            nn.Embedding(max_length, hidden_channels) if positional == "absolute" else None
        )
        self.dropout = nn.Dropout(dropout)
        self.blocks = block_stack(self.config, pos_dim=1, spectrum=attention_rpe, causal=True)
        self.norm = nn.LayerNorm(hidden_channels)
        self.out = nn.Linear(hidden_channels, vocab_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Reset embeddings, blocks and the output layer."""
        self.embedding.reset_parameters()
        if self.position_embedding is not None:
            self.position_embedding.reset_parameters()
        self.reset_blocks()
        self.out.reset_parameters()

    def forward(self, tokens: Tensor) -> Tensor:
        """Next-token logits; see the class docstring for shapes."""
        if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.dtype != torch.long:
            shape = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
            raise ValueError(f"tokens must be [B, L] long, got {shape}")
        b, length = tokens.shape
        if b < 1 or length < 1:
            raise ValueError(f"tokens must be [B, L] with B, L >= 1, got {tuple(tokens.shape)}")
        if int(tokens.min()) < 0 or int(tokens.max()) >= self.vocab_size:
            raise ValueError(f"tokens must lie in [0, {self.vocab_size}) (vocab_size)")
        x = self.embedding(tokens)
        if self.position_embedding is not None:
            if length > self.max_length:
                raise ValueError(
                    f"sequence length {length} exceeds max_length={self.max_length} of the "
                    "absolute position embedding"
                )
            x = x + self.position_embedding.weight[:length]
        x = self.dropout(x).reshape(b * length, self.hidden_channels)
        pos, batch = sequence_grid(b, length, device=x.device, dtype=x.dtype)
        # grid coordinates and graph ids: nothing to check, and every sequence has L tokens
        sizes = GraphSizes(b, b * length, length, b * length**2)
        x = checked_pass(self.blocks, x, pos, batch, sizes)
        return self.out(self.norm(x)).view(b, length, self.vocab_size)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.vocab_size}, hidden_channels={self.hidden_channels}, "
            f"num_layers={self.num_layers}, positional={self.positional!r}, "
            f"attention={self.attention!r})"
        )
