"""Building blocks shared by the sequential models (SASRec, LLM-ESR, PAD): a causal self-attention
encoder and the per-user training windows."""
from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn


class CausalEncoder(nn.Module):
    """SASRec's sequence encoder: x * sqrt(d) + position, dropout, causal pre-norm Transformer, LayerNorm.

    Inputs are left-padded: ``pad`` [B, L] is True at padding. Positions count from the most recent
    item, so the last item always has position 0 whatever the padding. Columns that are padding for
    every row are dropped (cheaper attention); the output has the remaining L' <= L columns.
    """

    def __init__(self, dim: int = 64, n_layers: int = 2, n_heads: int = 2, max_len: int = 50, dropout: float = 0.2):
        super().__init__()
        self.dim, self.n_heads = dim, n_heads
        self.pos_emb = nn.Embedding(max_len, dim)
        layer = nn.TransformerEncoderLayer(dim, n_heads, dim_feedforward=dim, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        nn.init.normal_(self.pos_emb.weight, std=0.02)

    @staticmethod
    def trim(seq: torch.Tensor) -> torch.Tensor:
        """Drop the leading columns that are padding (0) in every row of a left-padded id batch."""
        return seq[:, int((seq > 0).any(0).float().argmax()):]

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        B, L, _ = x.shape
        pos = torch.arange(L - 1, -1, -1, device=x.device)
        x = self.dropout(x * math.sqrt(self.dim) + self.pos_emb(pos)) * (~pad).unsqueeze(-1)
        return self.norm(self.encoder(x, mask=causal_mask(pad, self.n_heads)))


def causal_mask(pad: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Attention mask [B * n_heads, L, L] (True = blocked) for left-padded sequences: no position
    sees a later one or a padding key; padding rows attend to themselves (no all-blocked row)."""
    L = pad.shape[1]
    blocked = torch.triu(torch.ones(L, L, dtype=torch.bool, device=pad.device), 1)[None] | pad[:, None, :]
    blocked &= ~torch.eye(L, dtype=torch.bool, device=pad.device)
    return blocked.repeat_interleave(n_heads, 0)


def training_windows(histories: list[np.ndarray], batch_size: int, max_len: int, rng: np.random.Generator,
                     device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Per epoch, each history (ids + 1, length >= 2) once, in random order, as a left-padded window
    of ``max_len + 1`` items ending at a random point (the whole history when shorter): inputs
    [:, :-1] predict targets [:, 1:]. Yields (window [B, max_len + 1], row index into histories [B])."""
    order = rng.permutation(len(histories))
    L = max_len + 1
    for s in range(0, len(order), batch_size):
        rows = order[s:s + batch_size]
        out = np.zeros((len(rows), L), np.int64)
        for r, u in enumerate(rows):
            h = histories[u]
            end = int(rng.integers(L, len(h) + 1)) if len(h) > L else len(h)
            w = h[max(0, end - L):end]
            out[r, L - len(w):] = w
        yield torch.from_numpy(out).to(device), torch.from_numpy(rows).to(device)
