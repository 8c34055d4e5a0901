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
from .blocks import training_windows


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


def text_features(split: Split, encoder: str = "minilm", item_z: np.ndarray | None = None,
                  encoder_kwargs: dict | None = None, center: bool = False) -> np.ndarray:
    """The item table a text-reading model starts from, float32 [n_items, d]: ``item_z`` when given, else the
    language model ``encoder`` over the dataset's item texts (cached on disk, ``text.item_embeddings``).
    Checked to have one row per item. ``center=True``: subtract the catalogue's mean vector and re-normalise
    (AlphaRec)."""
    from ..text import item_embeddings, unit_rows

    kw = dict(encoder_kwargs or {})
    z = item_embeddings(split.dataset.item_texts, encoder, **kw) if item_z is None else np.asarray(item_z)
    if z.ndim != 2 or z.shape[0] != split.n_items:
        raise ValueError(f"item embeddings have {z.shape[0]} rows (shape {tuple(z.shape)}), the dataset has {split.n_items} items "
                         f"(one row per item expected)")
    z = z.astype(np.float32, copy=False)
    return unit_rows(z - z.mean(0, keepdims=True)) if center else z


def in_sorted(keys: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """bool, shape of ``q``: is each query in the sorted 1-D tensor ``keys``?"""
    pos = torch.searchsorted(keys, q).clamp(max=len(keys) - 1)
    return keys[pos] == q


class SequentialRecommender(Recommender):
    """What every sequential model shares (SASRec, LLM-ESR, PAD, ID+text concat, ...): each stage's input
    sequences (``valid_seq`` / ``test_seq``, ids + 1, left-padded), the train histories fed as training
    windows, and negatives drawn as the official SASRec code's ``random_neq``: uniform over
    ``split.negative_pool`` and never an item of the user's own train sequence.

    ``train_batches`` yields (window [B, max_len + 1], users [B]); inputs window[:, :-1] predict
    window[:, 1:]."""

    def __init__(self, split: Split, max_len: int = 50):
        super().__init__(split)
        self.max_len = max_len
        for stage in ("valid", "test"):
            self.register_buffer(f"{stage}_seq", torch.from_numpy(split.sequences(stage, max_len)), persistent=False)
        hist = split.histories("train")
        rows = np.array([u for u, h in enumerate(hist) if len(h) >= 2], dtype=np.int64)
        self.train_hist = [hist[u] + 1 for u in rows]
        self.register_buffer("hist_users", torch.from_numpy(rows), persistent=False)  # window row -> user id
        tr = split.train
        keys = np.unique(tr["user"].to_numpy().astype(np.int64) * (self.n_items + 1) + tr["item"].to_numpy() + 1)
        self.register_buffer("seen_keys", torch.from_numpy(keys), persistent=False)  # user x (item + 1), sorted
        self.register_buffer("neg_pool", torch.from_numpy(split.negative_pool.astype(np.int64) + 1), persistent=False)

    def train_batches(self, batch_size, rng):
        for window, rows in training_windows(self.train_hist, batch_size, self.max_len, rng, self.device):
            yield window, self.hist_users[rows]

    def in_train(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """bool, shape of ``items`` (ids + 1): is the item in the user's train sequence? ``users`` broadcasts."""
        return in_sorted(self.seen_keys, users.reshape(-1, *([1] * (items.dim() - 1))) * (self.n_items + 1) + items)

    def negatives(self, users: torch.Tensor, shape) -> torch.Tensor:
        """Negatives (ids + 1) of ``shape`` = [len(users), ...]: uniform over the negative pool, each
        redrawn until it is not in its user's train sequence (official ``random_neq``)."""
        pool = self.neg_pool
        neg = pool[torch.randint(len(pool), tuple(shape), device=pool.device)]
        for _ in range(100):  # a user who has seen (nearly) the whole pool keeps what it has after 100 tries
            bad = self.in_train(users, neg)
            if not bad.any():
                break
            neg[bad] = pool[torch.randint(len(pool), (int(bad.sum()),), device=pool.device)]
        return neg


def bpr_loss(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking: -log sigmoid(s(u,i+) - s(u,i-)), averaged."""
    return -torch.nn.functional.logsigmoid(pos - neg).mean()


class CTRRecommender(Recommender):
    """The click-through contract (task "ctr", on a ``data.ctr_view`` split):

        model = Model(split, **hyperparameters)
        for batch in model.train_batches(batch_size, rng): loss = model.loss(batch)   # BCE on logits
        logits = model.predict(batch)                     # [B]; batch = dict of tensors from split.arrays

    A batch holds user, item, label [B], hist and hist_label [B, max_history] (item ids + 1, 0 = padding).
    A subclass implements ``predict``; training rows are the split's train part, shuffled each epoch.
    ``eval_batch_size``: rows per ``predict`` call when evaluating (a model that runs an LM over every row's
    tokens sets it low, so evaluation does not build one huge batch)."""

    task = "ctr"
    eval_batch_size = 4096

    def __init__(self, split):
        if getattr(split, "protocol", None) != "ctr":
            raise ValueError(f"{type(self).__name__} is a CTR model: give it data.ctr_view(dataset)")
        super().__init__(split)
        self.max_history = split.max_history
        self._train = split.arrays("train")

    def train_batches(self, batch_size: int, rng: np.random.Generator) -> Iterator[dict]:
        order = rng.permutation(len(self._train["label"]))
        for s in range(0, len(order), batch_size):
            yield ctr_batch(self._train, order[s:s + batch_size], self.device)

    def loss(self, batch: dict) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(self.predict(batch), batch["label"])

    def predict(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError


def ctr_batch(arrays: dict, rows: np.ndarray, device) -> dict:
    """Rows ``rows`` of ``CTRSplit.arrays(part)`` as tensors on ``device``."""
    return {k: torch.from_numpy(v[rows]).to(device) for k, v in arrays.items()}
