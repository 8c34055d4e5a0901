"""LLM-ESR (Liu et al., "Large Language Models Enhancement for Long-tailed Sequential Recommendation",
NeurIPS 2024) on the project's SASRec backbone (official code: liuqidong07/LLM-ESR, models/LLMESR.py,
models/DualLLMSRS.py, models/utils.py).

Dual-view modelling. For a sequence s_1..s_t:
    semantic view:       e^sem_i = Adapter(z_i)            z_i = frozen LM embedding of item i's text,
                                                           Adapter = Linear(d, d/2) -> Linear(d/2, 64)
    collaborative view:  e^col_i = E_i                     E initialised with PCA_64(z) (not random)
    cross-attention (official ``llm2id`` / ``id2llm``; the output *replaces* each stream):
        e^col <- Attn(q = e^sem, k = v = e^col),    e^sem <- Attn(q = e^col, k = v = e^sem)
    ONE causal encoder shared by both views:
    h_u = [ Enc(e^col_s) ; Enc(e^sem_s) ]_t                (2 x 64)
    s(u, i) = h_u · [ E_i ; Adapter(z_i) ]                 (= ID-view + semantic-view dot products)
Retrieval-augmented self-distillation. An LM embedding of each user's history prompt retrieves the
``n_similar`` = 10 most similar users (cosine, never oneself; the official fixed ``sim_users[:10]``);
the mean of their representations (no gradient) is the teacher:
    L = L_rec + alpha * MSE(h_u, mean_{v in N(u)} sg(h_v)),    alpha = 0.1 (official)
L_rec: binary cross-entropy with one negative per position, mean over positives + mean over negatives
(``losses.sampled_bce``, the official scale, so alpha is in official units), or full softmax ("ce").
A teacher v is encoded on its train sequence without its last item, as the student's own last state is
(official ``_get_user_seq``: ``inter[:-1]``).

Deviations, named:
- Causal masks. The official backbone's causal mask is commented out and its cross-attention masks
  only padding keys, so with the sequence-to-sequence loss a position can attend to the item it must
  predict. Here the encoder and the cross-attention are causal (the SASRec contract every model here
  keeps); with a leak, full-ranking numbers would not be comparable with the other models.
- Teacher bank (CPU cost). The teachers' representations are re-encoded once per epoch for all users
  (eval mode) instead of 10 extra sequences per user per step (train mode, dropout on); they are
  detached in the official code too, so only their staleness within an epoch and dropout differ.
- Backbone settings are the project's shared SASRec ones (2 heads, dropout 0.2, max_len 50) rather
  than the official 1 head, dropout 0.5, max_len 200, so that every sequential model here is compared
  on one backbone.
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
from .base import SequentialRecommender, text_features
from .blocks import CausalEncoder, causal_mask


def pca_init(z: np.ndarray, dim: int, seed: int = 0) -> np.ndarray:
    """Rows of z projected on their first ``dim`` principal components (the ID table's start)."""
    return PCA(n_components=dim, random_state=seed).fit_transform(z).astype(np.float32)


class LLMESR(SequentialRecommender):
    def __init__(self, split: Split, encoder: str = "minilm", item_z: np.ndarray | None = None,
                 user_z: np.ndarray | None = None, dim: int = 64, n_layers: int = 2, n_heads: int = 2,
                 max_len: int = 50, dropout: float = 0.2, pca: bool = True, cross_attention: bool = True,
                 distill: bool = True, freeze_semantic: bool = True, alpha: float = 0.1, n_similar: int = 10,
                 loss_type: str = "bce", encoder_kwargs: dict | None = None):
        super().__init__(split, max_len)
        if loss_type not in ("ce", "bce"):
            raise ValueError(f"unknown loss_type {loss_type!r}; valid: ce, bce")
        item_z = text_features(split, encoder, item_z, encoder_kwargs)
        if pca and min(item_z.shape) < dim:
            raise ValueError(f"PCA init needs at least dim={dim} items and LM dimensions, got item_z {item_z.shape}; "
                             f"lower dim or set pca=False")
        self.loss_type, self.alpha, self.n_similar, self.dim = loss_type, alpha, n_similar, dim
        d_lm = item_z.shape[1]
        z = torch.cat([torch.zeros(1, d_lm), torch.as_tensor(item_z, dtype=torch.float32)])  # row 0 = padding
        self.sem_emb = nn.Embedding.from_pretrained(z, freeze=freeze_semantic, padding_idx=0)
        self.adapter = nn.Sequential(nn.Linear(d_lm, d_lm // 2), nn.Linear(d_lm // 2, dim))
        for layer in self.adapter:  # official: xavier_normal_ for every weight it does not load
            nn.init.xavier_normal_(layer.weight)
        self.id_emb = nn.Embedding(self.n_items + 1, dim, padding_idx=0)
        with torch.no_grad():
            nn.init.normal_(self.id_emb.weight, std=0.02)
            if pca:
                self.id_emb.weight[1:] = torch.from_numpy(pca_init(np.asarray(item_z), dim))
            self.id_emb.weight[0] = 0
        self.cross = None
        if cross_attention:  # official llm2id (query = semantic view, keys/values = ID view) and id2llm
            self.cross = nn.ModuleDict({"llm2id": nn.MultiheadAttention(dim, n_heads, batch_first=True),
                                        "id2llm": nn.MultiheadAttention(dim, n_heads, batch_first=True)})
        self.seq_encoder = CausalEncoder(dim, n_layers, n_heads, max_len, dropout)
        # a teacher's input: its train sequence without the last item (what the student's last state reads)
        hist = split.histories("train")
        teacher = np.zeros((self.n_users, max_len), np.int64)
        for u, h in enumerate(hist):
            h = h[:-1][-max_len:]
            teacher[u, max_len - len(h):] = h + 1
        self.register_buffer("teacher_seq", torch.from_numpy(teacher), persistent=False)
        similar = None
        if distill:
            if n_similar >= self.n_users:
                raise ValueError(f"n_similar={n_similar} needs more than {self.n_users} users")
            if user_z is None:
                user_z = item_embeddings(user_prompts(split), encoder, **(encoder_kwargs or {}))
            similar = torch.from_numpy(cached_similar_users(user_z, n_similar))
        self.register_buffer("similar", similar, persistent=False)  # None: no self-distillation
        self.register_buffer("bank", torch.zeros(self.n_users, 2 * dim), persistent=False)

    # ------------------------------------------------------------------------------ representation
    def item_table(self) -> torch.Tensor:
        """[n_items, 2d]: [E_i ; Adapter(z_i)]."""
        return torch.cat([self.id_emb.weight[1:], self.adapter(self.sem_emb.weight[1:])], dim=-1)

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """[B, L] ids + 1 (left-padded) -> [B, L', 2d] causal states of both views."""
        seq = CausalEncoder.trim(seq)
        pad = seq == 0
        col, sem = self.id_emb(seq), self.adapter(self.sem_emb(seq))
        if self.cross is not None:  # the output replaces each stream (official); causal, unlike the official
            mask = causal_mask(pad, self.cross["llm2id"].num_heads)
            col, sem = (self.cross["llm2id"](sem, col, col, attn_mask=mask, need_weights=False)[0],
                        self.cross["id2llm"](col, sem, sem, attn_mask=mask, need_weights=False)[0])
        return torch.cat([self.seq_encoder(col, pad), self.seq_encoder(sem, pad)], dim=-1)

    # ------------------------------------------------------------------------------ training
    @torch.no_grad()
    def refresh_bank(self, batch_size: int = 1024):
        """Teacher bank: every user's last state on their train sequence without its last item (eval mode)."""
        was = self.training
        self.eval()
        for s in range(0, self.n_users, batch_size):
            self.bank[s:s + batch_size] = self.encode(self.teacher_seq[s:s + batch_size])[:, -1]
        self.train(was)

    def teacher(self, users: torch.Tensor) -> torch.Tensor:
        """Mean bank representation of each user's ``n_similar`` retrieved users (fixed, most similar first)."""
        return self.bank[self.similar[users]].mean(1)

    def train_batches(self, batch_size, rng):
        if self.similar is not None and self.alpha > 0:
            self.refresh_bank()
        yield from super().train_batches(batch_size, rng)

    def loss(self, batch) -> torch.Tensor:
        seq, users = batch
        h = self.encode(seq[:, :-1])
        target = seq[:, -h.shape[1]:]
        valid = target > 0
        items = self.item_table()
        hv, tv = h[valid], target[valid] - 1
        if self.loss_type == "ce":
            loss = F.cross_entropy(hv @ items.T, tv)
        else:
            neg = self.negatives(users, target.shape)[valid] - 1
            loss = sampled_bce((hv * items[tv]).sum(-1), (hv * items[neg]).sum(-1))
        if self.similar is not None and self.alpha > 0:
            loss = loss + self.alpha * F.mse_loss(h[:, -1], self.teacher(users))
        return loss

    def score_all(self, users, stage, view: str = "both"):
        """h_u · [E_i ; Adapter(z_i)]; ``view`` "col" or "sem" keeps one half of that dot product, so
        that each view can be evaluated alone (both = col + sem)."""
        h, items = self.encode(getattr(self, f"{stage}_seq")[users])[:, -1], self.item_table()
        if view != "both":
            halves = {"col": slice(0, self.dim), "sem": slice(self.dim, None)}
            if view not in halves:
                raise ValueError(f"unknown view {view!r}; valid: both, col, sem")
            h, items = h[:, halves[view]], items[:, halves[view]]
        return h @ items.T
