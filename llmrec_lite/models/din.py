"""DIN — Deep Interest Network (Zhou et al., KDD 2018): the project's classic CTR baseline, the non-LLM
reference for every LLM CTR number (BAHE, LLM-CF).

For a row (user u, target item t, behaviours h_1..h_M strictly before it), with item ID embeddings e:

    a_j  = MLP_att([e_t; e_hj; e_t - e_hj; e_t * e_hj]) / sqrt(d)        (local activation unit, no softmax)
    v_u  = sum_j a_j e_hj                                                 (padding positions get a_j = 0)
    p    = sigmoid(w^T MLP_Dice([v_u; e_t; v_u * e_t]) + b)
    loss = BCE(p, y)

This follows RecBole's DIN (``sequential_recommender/din.py`` with ``SequenceAttLayer``): the attention MLP
uses sigmoid activations and unnormalised weights scaled by 1/sqrt(d) (DIN keeps the weights unnormalised
so the intensity of interest survives), the prediction MLP uses Dice activations, dropout 0, xavier-normal
init. Sizes are the original DIN code's (zhougr1993/DeepInterestNetwork: attention 80-40, MLP 200-80) with
32-d item embeddings, not RecBole's defaults (10-d, [256, 256, 256] for both MLPs): with 20 behaviours per
row RecBole's attention MLP costs ~120 s per ml-100k epoch on one CPU core, these sizes ~10x less.
``user_field=True`` adds a user-ID embedding e_u to the DNN input ([v_u; e_t; v_u * e_t; e_u]), as the official
LLM-CF DIN's feature set has one (RecBole's DIN has user features, not a user ID); off by default.
Differences: the behaviours are item IDs only (RecBole's item features would add genres), and Dice's own
batch norm stands in for RecBole's extra BatchNorm1d before it.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import CTRRecommender


class Dice(nn.Module):
    """Data-adaptive activation (DIN paper, eq. 9): p = sigmoid(BN(x)); f(x) = p x + (1 - p) alpha x."""

    def __init__(self, dim: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(dim, affine=False, eps=1e-8)
        self.alpha = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(self.bn(x))
        return p * x + (1 - p) * self.alpha * x


def mlp(sizes: list[int], act, dropout: float = 0.0) -> nn.Sequential:
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Dropout(dropout), nn.Linear(a, b), act(b)]
    return nn.Sequential(*layers)


class DIN(CTRRecommender):
    def __init__(self, split, dim: int = 32, att_hidden: tuple = (80, 40), hidden: tuple = (200, 80),
                 dropout: float = 0.0, extra_dim: int = 0, user_field: bool = False):
        super().__init__(split)
        self.dim = dim
        self.item_emb = nn.Embedding(self.n_items + 1, dim, padding_idx=0)  # ids + 1; 0 = padding
        self.user_emb = nn.Embedding(self.n_users, dim) if user_field else None  # optional user-ID field
        self.attention = nn.Sequential(mlp([4 * dim, *att_hidden], lambda _: nn.Sigmoid()), nn.Linear(att_hidden[-1], 1))
        self.dnn = mlp([(4 if user_field else 3) * dim + extra_dim, *hidden], Dice, dropout)  # extra_dim: a model's added feature (LLM-CF)
        self.out = nn.Linear(hidden[-1], 1)
        nn.init.xavier_normal_(self.item_emb.weight.data[1:])  # RecBole: xavier_normal_ for embeddings
        if user_field:
            nn.init.xavier_normal_(self.user_emb.weight)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def interest(self, target: torch.Tensor, hist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(v_u [B, d], attention weights [B, M]) for target embeddings [B, d] and behaviour ids [B, M]."""
        keys = self.item_emb(hist)
        q = target[:, None].expand_as(keys)
        a = self.attention(torch.cat([q, keys, q - keys, q * keys], -1)).squeeze(-1) / self.dim ** 0.5
        a = a.masked_fill(hist == 0, 0.0)
        return (a[..., None] * keys).sum(1), a

    def head(self, batch: dict, v_u: torch.Tensor, e_t: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        """Logits from the DNN over [v_u; e_t; v_u * e_t; e_user (with ``user_field``); *extra] (extra: a model's
        added feature, LLM-CF's w)."""
        user = [] if self.user_emb is None else [self.user_emb(batch["user"])]
        return self.out(self.dnn(torch.cat([v_u, e_t, v_u * e_t, *user, *extra], -1))).squeeze(-1)

    def predict(self, batch: dict) -> torch.Tensor:
        e_t = self.item_emb(batch["item"] + 1)
        v_u, _ = self.interest(e_t, batch["hist"])
        return self.head(batch, v_u, e_t)
