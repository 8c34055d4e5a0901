"""LightGCN (He et al., SIGIR 2020).

Propagation on the normalised user-item graph  A_hat = D^{-1/2} A D^{-1/2}:
    E^{(k+1)} = A_hat E^{(k)},   E = 1/(K+1) * sum_{k=0..K} E^{(k)}
score s(u, i) = e_u · e_i; loss = BPR + lambda * ||E^{(0)}_batch||^2 / (2 * batch size).
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ..data.split import Split
from .base import PairSampler, Recommender, bpr_loss


def normalized_adjacency(split: Split) -> torch.Tensor:
    """Symmetric-normalised bipartite adjacency of the train graph, as a sparse CSR torch tensor."""
    r = split.matrix("train")
    a = sp.bmat([[None, r], [r.T, None]], format="csr")
    deg = np.asarray(a.sum(1)).ravel()
    d = np.power(deg, -0.5, where=deg > 0, out=np.zeros_like(deg))
    a = (sp.diags(d) @ a @ sp.diags(d)).tocsr()
    a.sort_indices()
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the ops used here are stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.from_numpy(a.indptr.astype(np.int64)),
                                       torch.from_numpy(a.indices.astype(np.int64)),
                                       torch.from_numpy(a.data.astype(np.float32)), size=a.shape,
                                       check_invariants=True)


class LightGCN(Recommender):
    def __init__(self, split: Split, dim: int = 64, n_layers: int = 2, reg_weight: float = 1e-5):
        super().__init__(split)
        self.n_layers, self.reg_weight = n_layers, reg_weight
        self.user_emb = nn.Embedding(self.n_users, dim)
        self.item_emb = nn.Embedding(self.n_items, dim)
        nn.init.xavier_uniform_(self.user_emb.weight)
        nn.init.xavier_uniform_(self.item_emb.weight)
        self.register_buffer("adj", normalized_adjacency(split), persistent=False)
        self.sampler = PairSampler(split)
        self._cache = None  # propagated embeddings, reused while evaluating

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        e = torch.cat([self.user_emb.weight, self.item_emb.weight])
        layers = [e]
        for _ in range(self.n_layers):
            e = torch.sparse.mm(self.adj, e)
            layers.append(e)
        out = torch.stack(layers).mean(0)
        return out[: self.n_users], out[self.n_users:]

    def train_batches(self, batch_size, rng):
        self._cache = None
        return self.sampler.batches(batch_size, rng, self.device)

    def loss(self, batch) -> torch.Tensor:
        u, i, j = batch
        users, items = self.propagate()
        eu = users[u]
        rec = bpr_loss((eu * items[i]).sum(-1), (eu * items[j]).sum(-1))
        ego = [self.user_emb(u), self.item_emb(i), self.item_emb(j)]
        reg = sum(e.pow(2).sum() for e in ego) / (2 * len(u))
        return rec + self.reg_weight * reg

    def score_all(self, users, stage):
        if self._cache is None or self.training:
            self._cache = self.propagate()
        u, i = self._cache
        return u[users] @ i.T

    def train(self, mode: bool = True):
        self._cache = None
        return super().train(mode)
