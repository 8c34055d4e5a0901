"""LightGCN (He et al., SIGIR 2020).

Propagation on the normalised user-item graph  A_hat = D^{-1/2} A D^{-1/2}:
    E^{(k+1)} = A_hat E^{(k)},   E = 1/(K+1) * sum_{k=0..K} E^{(k)}
score s(u, i) = e_u · e_i; loss = BPR + lambda * ||E^{(0)}_batch||^2 / (2 * batch size).
"""
from __future__ import annotations

import torch
from torch import nn

from ..data.split import Split
from ..graph import normalized_adjacency, propagate
from .base import EmbeddingRecommender, PairSampler, bpr_loss


class LightGCN(EmbeddingRecommender):
    def __init__(self, split: Split, dim: int = 64, n_layers: int = 2, reg_weight: float = 1e-5):
        super().__init__(split)
        self.n_layers, self.reg_weight = n_layers, reg_weight
        self.user_emb = nn.Embedding(self.n_users, dim)
        self.item_emb = nn.Embedding(self.n_items, dim)
        nn.init.xavier_uniform_(self.user_emb.weight)
        nn.init.xavier_uniform_(self.item_emb.weight)
        self.register_buffer("adj", normalized_adjacency(split), persistent=False)
        self.sampler = PairSampler(split)

    def embed(self) -> tuple[torch.Tensor, torch.Tensor]:
        out = propagate(self.adj, torch.cat([self.user_emb.weight, self.item_emb.weight]), self.n_layers)
        return out[: self.n_users], out[self.n_users:]

    def train_batches(self, batch_size, rng):
        return self.sampler.batches(batch_size, rng, self.device)

    def loss(self, batch) -> torch.Tensor:
        u, i, j = batch
        users, items = self.embed()
        eu = users[u]
        rec = bpr_loss((eu * items[i]).sum(-1), (eu * items[j]).sum(-1))
        ego = [self.user_emb(u), self.item_emb(i), self.item_emb(j)]
        reg = sum(e.pow(2).sum() for e in ego) / (2 * len(u))
        return rec + self.reg_weight * reg
