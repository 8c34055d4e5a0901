"""The model contract every recommender in llmrec_lite follows (cf. RecBole's calculate_loss /
full_sort_predict):

    model = Model(split, **hyperparameters)
    for batch in model.train_batches(batch_size, rng): loss = model.loss(batch)
    scores = model.score_all(users, stage)       # [len(users), n_items], stage "valid" | "test"

``score_all`` may use everything the user did before the stage's target (train items; at test,
also the valid item), never the target itself.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from ..data.split import Split


class Recommender(nn.Module):
    trainable = True  # False for models that have nothing to fit (popularity)

    def __init__(self, split: Split):
        super().__init__()
        self.n_users, self.n_items = split.n_users, split.n_items

    @property
    def device(self) -> torch.device:
        return next(self.parameters(), torch.empty(0)).device

    def train_batches(self, batch_size: int, rng: np.random.Generator) -> Iterator:
        raise NotImplementedError

    def loss(self, batch) -> torch.Tensor:
        raise NotImplementedError

    def score_all(self, users: torch.Tensor, stage: str) -> torch.Tensor:
        raise NotImplementedError

    def param_groups(self, lr: float) -> list[dict]:
        """Parameter groups for the optimiser; a model overrides this to give some parameters their own
        learning rate (PAD's gate)."""
        return [{"params": list(self.parameters()), "lr": lr}]


class EmbeddingRecommender(Recommender):
    """A model whose scores are dot products of user and item embeddings computed for all of them at
    once by ``embed()`` (graph propagation, an MLP over LM vectors, ...). While evaluating, the
    embeddings are computed once and reused for every batch of users; ``train()`` discards them.
    ``cosine = True`` scores with normalised embeddings."""

    cosine = False

    def __init__(self, split: Split):
        super().__init__(split)
        self._cache = None

    def embed(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def scoring_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(users, items) as scored (normalised if ``cosine``); cached while not training."""
        if self._cache is None or self.training:
            u, i = self.embed()
            if self.cosine:
                u, i = nn.functional.normalize(u, dim=-1), nn.functional.normalize(i, dim=-1)
            self._cache = (u, i)
        return self._cache

    def score_all(self, users: torch.Tensor, stage: str) -> torch.Tensor:
        u, i = self.scoring_embeddings()
        return u[users] @ i.T

    def train(self, mode: bool = True):
        self._cache = None
        return super().train(mode)


class PairSampler:
    """(user, positive, negative) triples over the train interactions, one uniform negative per
    positive (from ``split.negative_pool``), resampled until it is not among the user's train items
    (as RecBole's sampler)."""

    def __init__(self, split: Split):
        self.users = split.train["user"].to_numpy()
        self.items = split.train["item"].to_numpy()
        self.n_items = split.n_items
        self.pool = split.negative_pool
        self.keys = np.unique(self.users.astype(np.int64) * self.n_items + self.items)

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        q = users.astype(np.int64) * self.n_items + items
        pos = np.minimum(np.searchsorted(self.keys, q), len(self.keys) - 1)
        return self.keys[pos] == q

    def negatives(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        neg = self.pool[rng.integers(len(self.pool), size=len(users))]
        bad = self.is_positive(users, neg)
        while bad.any():
            neg[bad] = self.pool[rng.integers(len(self.pool), size=int(bad.sum()))]
            bad[bad] = self.is_positive(users[bad], neg[bad])
        return neg

    def batches(self, batch_size: int, rng: np.random.Generator, device) -> Iterator:
        order = rng.permutation(len(self.users))
        for s in range(0, len(order), batch_size):
            b = order[s:s + batch_size]
            u = self.users[b]
            yield tuple(torch.from_numpy(x).to(device) for x in (u, self.items[b], self.negatives(u, rng)))


def bpr_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking: -log sigmoid(s(u,i+) - s(u,i-)), averaged."""
    return -torch.nn.functional.logsigmoid(pos - neg).mean()
