"""SASRec (Kang & McAuley, ICDM 2018): a causal self-attention encoder over the item sequence.

    h_t = Transformer(E[s_1..s_t] + P)_t ,   s(u, i) = h_T · E_i   (item embeddings tied)

Trained as in the original paper with one pass per user sequence, predicting every next position
(not RecBole's one sample per prefix). Histories longer than ``max_len`` contribute a window of
``max_len + 1`` items ending at a random point, drawn anew each epoch, so no part is wasted. Loss: full softmax cross-entropy over all items ("ce",
RecBole's default) or binary cross-entropy with one sampled negative per position ("bce", the
original paper's). Positions are counted from the most recent item, so the last item always has
position 0 whatever the padding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.split import Split
from ..losses import sampled_bce
from .base import Recommender
from .blocks import CausalEncoder, training_windows


class SASRec(Recommender):
    def __init__(self, split: Split, dim: int = 64, n_layers: int = 2, n_heads: int = 2,
                 max_len: int = 50, dropout: float = 0.2, loss_type: str = "ce"):
        super().__init__(split)
        if loss_type not in ("ce", "bce"):
            raise ValueError(f"unknown loss_type {loss_type!r}; valid: ce, bce")
        self.loss_type = loss_type
        self.item_emb = nn.Embedding(self.n_items + 1, dim, padding_idx=0)  # id 0 = padding
        self.seq_encoder = CausalEncoder(dim, n_layers, n_heads, max_len, dropout, init_positions=False)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        nn.init.normal_(self.seq_encoder.pos_emb.weight, std=0.02)
        for stage in ("valid", "test"):
            self.register_buffer(f"{stage}_seq", torch.from_numpy(split.sequences(stage, max_len)), persistent=False)
        self.max_len = max_len
        self.train_hist = [h + 1 for h in split.histories("train") if len(h) >= 2]  # ids + 1

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """[B, L] item ids (+1, 0 = pad, left-padded) -> [B, L', dim] causal states."""
        seq = CausalEncoder.trim(seq)
        return self.seq_encoder(self.item_emb(seq), seq == 0)

    def train_batches(self, batch_size, rng):
        for window, _ in training_windows(self.train_hist, batch_size, self.max_len, rng, self.device):
            yield window

    def loss(self, seq: torch.Tensor) -> torch.Tensor:
        h = self.encode(seq[:, :-1])
        target = seq[:, -h.shape[1]:]
        valid = target > 0
        h, target = h[valid], target[valid]
        items = self.item_emb.weight[1:]
        if self.loss_type == "ce":
            return F.cross_entropy(h @ items.T, target - 1)
        neg = torch.randint(1, self.n_items + 1, target.shape, device=h.device)
        pos_logit = (h * self.item_emb(target)).sum(-1)
        neg_logit = (h * self.item_emb(neg)).sum(-1)
        return sampled_bce(pos_logit, neg_logit)

    def score_all(self, users, stage):
        seq = getattr(self, f"{stage}_seq")[users]
        return self.encode(seq)[:, -1] @ self.item_emb.weight[1:].T
