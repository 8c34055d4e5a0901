"""LLM-ESR (Liu et al., "Large Language Models Enhancement for Long-tailed Sequential Recommendation",
NeurIPS 2024) on a SASRec backbone.

Dual-view modelling. For a sequence s_1..s_t:
    semantic view:       e^sem_i = Adapter(z_i)            z_i = frozen LM embedding of item i's text
    collaborative view:  e^col_i = E_i                     E initialised with PCA_d(z) (not random)
    (optional) causal cross-attention between the views (residual: e + Attn(e, e_other)), then ONE
    causal encoder shared by both views:
    h_u = [ Enc(e^col_s) ; Enc(e^sem_s) ]_t                (2d)
    s(u, i) = h_u · [ E_i ; Adapter(z_i) ]
Retrieval-augmented self-distillation. An LM embedding of each user's history prompt retrieves the
``pool_similar`` most similar users (cosine, never oneself); each step, ``n_similar`` of them are drawn
and the mean of their sequence representations (no gradient) is the teacher:
    L = L_rec + alpha * || h_u - mean_{v in N(u)} sg(h_v) ||^2
L_rec: binary cross-entropy with one sampled negative per position (the paper's) or full softmax.

CPU adaptation (documented deviation): the teachers' representations h_v are re-encoded once per epoch
for all users (a "teacher bank", eval mode) instead of re-encoding 10 extra sequences per user per step;
they are detached in the official code too, so only their staleness within an epoch differs.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA
from torch import nn

from ..data.split import Split
from ..losses import sampled_bce
from ..retrieval import cached_similar_users, user_prompts
from ..text import item_embeddings
from .base import Recommender
from .blocks import CausalEncoder, causal_mask, training_windows


def pca_init(z: np.ndarray, dim: int, seed: int = 0) -> np.ndarray:
    """Rows of z projected on their first ``dim`` principal components (the ID table's start)."""
    return PCA(n_components=dim, random_state=seed).fit_transform(z).astype(np.float32)


class LLMESR(Recommender):
    def __init__(self, split: Split, encoder: str = "minilm", item_z: np.ndarray | None = None,
                 user_z: np.ndarray | None = None, dim: int = 64, n_layers: int = 2, n_heads: int = 2,
                 max_len: int = 50, dropout: float = 0.2, pca: bool = True, cross_attention: bool = True,
                 distill: bool = True, freeze_semantic: bool = True, alpha: float = 0.1, n_similar: int = 10,
                 pool_similar: int = 100, loss_type: str = "bce", encoder_kwargs: dict | None = None):
        super().__init__(split)
        if loss_type not in ("ce", "bce"):
            raise ValueError(f"unknown loss_type {loss_type!r}; valid: ce, bce")
        kw = encoder_kwargs or {}
        if item_z is None:
            item_z = item_embeddings(split.dataset.item_texts, encoder, **kw)
        if item_z.shape[0] != self.n_items:
            raise ValueError(f"item embeddings have {item_z.shape[0]} rows, the dataset has {self.n_items} items")
        if pca and min(item_z.shape) < dim:
            raise ValueError(f"PCA init needs at least dim={dim} items and LM dimensions, got item_z {item_z.shape}; "
                             f"lower dim or set pca=False")
        self.loss_type, self.alpha, self.n_similar, self.max_len, self.dim = loss_type, alpha, n_similar, max_len, dim
        d_lm = item_z.shape[1]
        z = torch.cat([torch.zeros(1, d_lm), torch.as_tensor(item_z, dtype=torch.float32)])  # row 0 = padding
        self.sem_emb = nn.Embedding.from_pretrained(z, freeze=freeze_semantic, padding_idx=0)
        self.adapter = nn.Sequential(nn.Linear(d_lm, d_lm // 2), nn.Linear(d_lm // 2, dim))
        self.id_emb = nn.Embedding(self.n_items + 1, dim, padding_idx=0)
        with torch.no_grad():
            nn.init.normal_(self.id_emb.weight, std=0.02)
            if pca:
                self.id_emb.weight[1:] = torch.from_numpy(pca_init(np.asarray(item_z), dim))
            self.id_emb.weight[0] = 0
        self.cross = None
        if cross_attention:  # query = one view, keys/values = the other; causal like the encoder
            self.cross = nn.ModuleDict({"col": nn.MultiheadAttention(dim, n_heads, batch_first=True),
                                        "sem": nn.MultiheadAttention(dim, n_heads, batch_first=True)})
        self.seq_encoder = CausalEncoder(dim, n_layers, n_heads, max_len, dropout)
        for stage in ("valid", "test"):
            self.register_buffer(f"{stage}_seq", torch.from_numpy(split.sequences(stage, max_len)), persistent=False)
        self.register_buffer("train_seq", torch.from_numpy(split.sequences("train", max_len)), persistent=False)
        hist = split.histories("train")
        hist_users = np.array([u for u, h in enumerate(hist) if len(h) >= 2], dtype=np.int64)
        self.train_hist = [hist[u] + 1 for u in hist_users]
        self.register_buffer("hist_users", torch.from_numpy(hist_users), persistent=False)  # row -> user id
        similar = None
        if distill:
            if user_z is None:
                user_z = item_embeddings(user_prompts(split), encoder, **kw)
            similar = torch.from_numpy(cached_similar_users(user_z, pool_similar))
        self.register_buffer("similar", similar, persistent=False)  # None: no self-distillation
        self.register_buffer("bank", torch.zeros(self.n_users, 2 * dim), persistent=False)
        # the bank is what validation computes anyway (leave-one-out: valid input = train sequence), so
        # an evaluation on "valid" refills it; refresh_bank skips users filled since the last update
        self.register_buffer("bank_step", torch.full((self.n_users,), -1), persistent=False)
        self.steps, self.valid_is_train = 0, bool(torch.equal(self.valid_seq, self.train_seq))

    # ------------------------------------------------------------------------------ representation
    def item_table(self) -> torch.Tensor:
        """[n_items, 2d]: [E_i ; Adapter(z_i)]."""
        return torch.cat([self.id_emb.weight[1:], self.adapter(self.sem_emb.weight[1:])], dim=-1)

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """[B, L] ids + 1 (left-padded) -> [B, L', 2d] causal states of both views."""
        seq = CausalEncoder.trim(seq)
        pad = seq == 0
        col, sem = self.id_emb(seq), self.adapter(self.sem_emb(seq))
        if self.cross is not None:  # residual cross-attention, causal; pad rows attend to themselves
            mask = causal_mask(pad, self.cross["col"].num_heads)
            col, sem = (col + self.cross["col"](col, sem, sem, attn_mask=mask, need_weights=False)[0],
                        sem + self.cross["sem"](sem, col, col, attn_mask=mask, need_weights=False)[0])
        return torch.cat([self.seq_encoder(col, pad), self.seq_encoder(sem, pad)], dim=-1)

    # ------------------------------------------------------------------------------ training
    @torch.no_grad()
    def refresh_bank(self, batch_size: int = 1024):
        """Teacher bank: every user's representation of their whole train sequence (eval mode)."""
        if bool((self.bank_step == self.steps).all()):
            return  # filled by the validation pass with the current weights
        was = self.training
        self.eval()
        for s in range(0, self.n_users, batch_size):
            self.bank[s:s + batch_size] = self.encode(self.train_seq[s:s + batch_size])[:, -1]
        self.bank_step.fill_(self.steps)
        self.train(was)

    def teacher(self, users: torch.Tensor) -> torch.Tensor:
        """Mean bank representation of ``n_similar`` users drawn from each user's retrieved pool."""
        pick = torch.randint(self.similar.shape[1], (len(users), self.n_similar), device=users.device)
        return self.bank[torch.gather(self.similar[users], 1, pick)].mean(1).detach()

    def train_batches(self, batch_size, rng):
        if self.similar is not None and self.alpha > 0:
            self.refresh_bank()
        for window, rows in training_windows(self.train_hist, batch_size, self.max_len, rng, self.device):
            yield window, self.hist_users[rows]

    def loss(self, batch) -> torch.Tensor:
        seq, users = batch
        self.steps += 1  # the weights are about to change: the bank is stale
        h = self.encode(seq[:, :-1])
        target = seq[:, -h.shape[1]:]
        valid = target > 0
        items = self.item_table()
        hv, tv = h[valid], target[valid] - 1
        if self.loss_type == "ce":
            loss = F.cross_entropy(hv @ items.T, tv)
        else:
            neg = torch.randint(self.n_items, tv.shape, device=hv.device)
            pos_logit, neg_logit = (hv * items[tv]).sum(-1), (hv * items[neg]).sum(-1)
            loss = sampled_bce(pos_logit, neg_logit)
        if self.similar is not None and self.alpha > 0:
            loss = loss + self.alpha * F.mse_loss(h[:, -1], self.teacher(users))
        return loss

    def score_all(self, users, stage, view: str = "both"):
        """h_u · [E_i ; Adapter(z_i)]; ``view`` "col" or "sem" keeps one half of that dot product, so
        that each view can be evaluated alone (both = col + sem)."""
        h, items = self.encode(getattr(self, f"{stage}_seq")[users])[:, -1], self.item_table()
        if stage == "valid" and self.valid_is_train and not self.training and not torch.is_grad_enabled():
            self.bank[users], self.bank_step[users] = h, self.steps
        if view != "both":
            halves = {"col": slice(0, self.dim), "sem": slice(self.dim, None)}
            if view not in halves:
                raise ValueError(f"unknown view {view!r}; valid: both, col, sem")
            h, items = h[:, halves[view]], items[:, halves[view]]
        return h @ items.T
