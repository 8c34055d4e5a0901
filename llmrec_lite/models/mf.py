"""MF-BPR (Rendle et al., 2009): s(u, i) = e_u · e_i, trained with the BPR pairwise loss."""
from __future__ import annotations

import torch
from torch import nn

from ..data.split import Split
from .base import PairSampler, Recommender, bpr_loss


class MF(Recommender):
    def __init__(self, split: Split, dim: int = 64):
        super().__init__(split)
        self.user_emb = nn.Embedding(self.n_users, dim)
        self.item_emb = nn.Embedding(self.n_items, dim)
        nn.init.xavier_normal_(self.user_emb.weight)
        nn.init.xavier_normal_(self.item_emb.weight)
        self.sampler = PairSampler(split)

    def train_batches(self, batch_size, rng):
        return self.sampler.batches(batch_size, rng, self.device)

    def loss(self, batch) -> torch.Tensor:
        u, i, j = batch
        eu = self.user_emb(u)
        return bpr_loss((eu * self.item_emb(i)).sum(-1), (eu * self.item_emb(j)).sum(-1))

    def score_all(self, users, stage):
        return self.user_emb(users) @ self.item_emb.weight.T
