"""AlphaRec (Sheng et al., "Language Representations Can be What Recommenders Need", ICLR 2025).

No ID embeddings. Frozen LM embeddings of item titles z_i; a user starts as the mean of the LM
embeddings of their train items, z_u = 1/|N_u| sum_{i in N_u} z_i. Then

    MLP:          e^(0) = W_2 LeakyReLU(W_1 z + b_1) + b_2           (hidden = half the LM width)
    graph conv.:  e = 1/(K+1) sum_k A_hat^k e^(0)                     (LightGCN, K = 2)
    score:        s(u, i) = cos(e_u, e_i)
    loss:         cosine InfoNCE with tau and N uniform negatives     (losses.info_nce)

``AlphaRecLinear`` is the paper's linear-mapping probe: one bias-free matrix W maps z into a d-dim
space (e = W z, no graph convolution), trained with the same loss. If a linear map of a frozen language
space recommends well, preference is (linearly) encoded there — the paper's "homomorphism".

Training data as the official trainer (models/General/base/abstract_data.py): an epoch has as many
samples as train interactions, taken user by user in turn (every user equally often, one random
positive each: ``sampler="user"``; ``"interaction"`` passes over the interactions instead, so heavy users
weigh more). Negatives: the official code draws 256 per row, never among the user's train items; here
256 uniform negatives are shared by the batch (CPU cost: one [256, d] table instead of [B, 256, d]) and
every logit of a negative that is among the row's user's train items (the positive included) is masked.

Deviation, chosen on validation: the LM vectors are centred (catalogue mean subtracted, re-normalised;
``center=False`` turns it off; applied to ``item_z`` too when one is passed, so pass raw vectors: centring twice is
not the same map, each pass re-normalises). SmolLM2's mean-pooled layer-15 item vectors have mean cosine 0.9996;
centring lifted that linear probe's validation Recall@20 on ml-100k from 0.3129 to 0.3508 (notebook 01's probe
table; MiniLM's vectors, mean cosine 0.45, need it less). The official code feeds the raw vectors.

Sampler, on validation (notebook 01, ml-100k, seed 2020): the interaction pass is slightly ahead (valid R@20
0.3645 vs 0.3588; test 0.3675 vs 0.3697); the official user-by-user sampler stays the default, for fidelity.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ..data.split import Split
from ..graph import normalized_adjacency, propagate
from ..losses import info_nce
from .base import EmbeddingRecommender, PairSampler, in_sorted, text_features


def mean_of_items(split: Split, z: np.ndarray) -> np.ndarray:
    """z_u = mean of the LM embeddings of u's train items (zeros for a user without any)."""
    r = split.matrix("train")
    n = np.asarray(r.sum(1)).ravel()
    return np.asarray(sp.diags(1 / np.maximum(n, 1)) @ r @ z, dtype=np.float32)


class _LanguageSpaceModel(EmbeddingRecommender):
    """Shared by AlphaRec and its linear probe: frozen z for items and users, InfoNCE training,
    cosine scores."""

    cosine = True

    def __init__(self, split: Split, encoder: str, z: np.ndarray | None, tau: float, n_negatives: int,
                 encoder_kwargs: dict | None, center: bool = True, sampler: str = "user"):
        super().__init__(split)
        if sampler not in ("user", "interaction"):
            raise ValueError(f"unknown sampler {sampler!r}; valid: user, interaction")
        if "center" in (encoder_kwargs or {}):
            raise ValueError("pass center=... to the model, not in encoder_kwargs")
        z = text_features(split, encoder, z, encoder_kwargs, center=center)
        self.encoder, self.tau, self.n_negatives, self.sampler_kind = encoder, tau, n_negatives, sampler
        self.register_buffer("z_item", torch.as_tensor(z, dtype=torch.float32), persistent=False)
        self.register_buffer("z_user", torch.from_numpy(mean_of_items(split, z)), persistent=False)
        self.register_buffer("neg_pool", torch.from_numpy(split.negative_pool), persistent=False)
        self.sampler = PairSampler(split)
        self.sampler_matrix = split.matrix("train")
        self.register_buffer("seen_keys", torch.from_numpy(self.sampler.keys), persistent=False)  # user x item, sorted
        small = split.n_users * split.n_items <= 5e7  # a dense [users, items] bool table is faster to index (< 50 MB)
        self.register_buffer("seen_dense", torch.from_numpy(self.sampler_matrix.toarray() > 0) if small else None,
                             persistent=False)

    def train_batches(self, batch_size, rng):
        if self.sampler_kind == "interaction":
            for u, i, _ in self.sampler.batches(batch_size, rng, self.device):
                yield u, i
            return
        r = self.sampler_matrix
        deg = np.diff(r.indptr)
        active = np.flatnonzero(deg)
        n = r.nnz  # official: len = number of train interactions, user = users[index % n_users]
        users = rng.permutation(active[np.arange(n) % len(active)])
        pos = r.indices[r.indptr[users] + (rng.random(n) * deg[users]).astype(np.int64)]
        for s in range(0, n, batch_size):
            yield tuple(torch.from_numpy(x[s:s + batch_size]).to(self.device) for x in (users, pos))

    def loss(self, batch) -> torch.Tensor:
        u, i = batch
        users, items = self.embed()
        neg = self.neg_pool[torch.randint(len(self.neg_pool), (self.n_negatives,), device=u.device)]
        if self.seen_dense is not None:  # [B, N]: is (user, negative) a train interaction?
            own = self.seen_dense[:, neg][u]
        else:
            own = in_sorted(self.seen_keys, u[:, None] * self.n_items + neg[None, :])
        return info_nce(users[u], items[i], items[neg], self.tau, neg_mask=own)

    def map_text(self, z: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The learned map applied to new LM vectors (no graph: a text has no interactions)."""
        raise NotImplementedError

    @torch.no_grad()
    def intention_scores(self, users, z_intention, alpha: float = 0.3) -> torch.Tensor:
        """User intention (paper, Sec. 4.4): mix a text intention into the user representation,
        e~_u = (1 - alpha) e_u + alpha e_int, both normalised, e_int = map of the intention's LM
        vector; returns cosine scores [len(users), n_items]."""
        self.eval()
        u, i = self.scoring_embeddings()  # normalised (cosine = True), computed once while evaluating
        u = u[torch.as_tensor(users, device=u.device)]
        e_int = nn.functional.normalize(self.map_text(z_intention).reshape(1, -1), dim=-1)
        mixed = nn.functional.normalize((1 - alpha) * u + alpha * e_int, dim=-1)
        return mixed @ i.T


class AlphaRec(_LanguageSpaceModel):
    def __init__(self, split: Split, encoder: str = "minilm", item_z: np.ndarray | None = None,
                 dim: int = 64, n_layers: int = 2, tau: float = 0.15, n_negatives: int = 256,
                 encoder_kwargs: dict | None = None, center: bool = True, sampler: str = "user"):
        super().__init__(split, encoder, item_z, tau, n_negatives, encoder_kwargs, center, sampler)
        d_lm = self.z_item.shape[1]
        self.mlp = nn.Sequential(nn.Linear(d_lm, d_lm // 2), nn.LeakyReLU(), nn.Linear(d_lm // 2, dim))
        self.n_layers = n_layers
        self.register_buffer("adj", normalized_adjacency(split), persistent=False)

    def map_text(self, z):
        return self.mlp(torch.as_tensor(z, dtype=torch.float32, device=self.z_item.device))

    def embed(self):
        e0 = self.mlp(torch.cat([self.z_user, self.z_item]))
        e = propagate(self.adj, e0, self.n_layers)
        return e[: self.n_users], e[self.n_users:]


class AlphaRecLinear(_LanguageSpaceModel):
    def __init__(self, split: Split, encoder: str = "minilm", item_z: np.ndarray | None = None,
                 dim: int = 64, tau: float = 0.15, n_negatives: int = 256, encoder_kwargs: dict | None = None,
                 center: bool = True, sampler: str = "user"):
        super().__init__(split, encoder, item_z, tau, n_negatives, encoder_kwargs, center, sampler)
        self.W = nn.Linear(self.z_item.shape[1], dim, bias=False)

    def map_text(self, z):
        return self.W(torch.as_tensor(z, dtype=torch.float32, device=self.z_item.device))

    def embed(self):
        return self.W(self.z_user), self.W(self.z_item)
