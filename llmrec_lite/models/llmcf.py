"""LLM-CF (Sun et al., "Large Language Models Enhanced Collaborative Filtering", CIKM 2024; official code
Jeryi-Sun/LLM-CF: ``retrieval_task/src_code/models/{base,SASREC}.py``, ``ranking_task/src_code/models/{base,DIN}.py``,
``models/transformer_decoder.py``, ``LLaMA-Factory/generate/retrieval_ICL*.py``), online half. The offline half
(RecGen, CoT generation, the pool P of CoT-annotated train rows): ``llmcf_offline.py``.

For a query q (user u, history h, target t; t unknown when ranking every item):
  Retrieval (official: offline per row, here inside the model, same rule): z = MiniLM item-text vectors,
  z̄_h = their mean over a history;
      score(q, p) = 0.5 <z̄_hq, z̄_hp> + 0.5 <z_tq, z_tp>      (CTR; SASRec: history only, as the official code)
  the top ceil(K/2) positive and floor(K/2) negative rows of P, never a row of the query's own user (so
  never the example itself nor anything of its future), least similar first. ``retrieval="random"``: random
  rows instead of the score, drawn afresh for every query row in training (a fixed set per user would act as a
  user ID), a fixed seeded draw per user at evaluation (one query per user and stage); same label balance and
  the same exclusions.
  Tokens (dim d), M = text map (shared by item text, history text and CoT), E = the backbone's item IDs:
      F(x) = MLP_f([e_u; s(h); M z̄_h; E_t; M z_t])   s(h): SASRec's own encoder state / DIN's mean of E over h
      C_p = M c_p (c_p = MiniLM(CoT_p), unit),  L_p = E_label[y_p]
  the query's target is the padding item when ranking (E_0 = 0, M 0), "to avoid data leakage" (official).
  ICT: a LLaMA decoder (``transformers.LlamaModel``: RMSNorm, RoPE, SwiGLU, causal, no dropout; 2 layers,
  2 heads, FFN 2/3 x 2d rounded up to 32: the official ``transformer_decoder.py`` with ``dim_feedforward = 2d``
  from ``models/base.py``) over
      [F_1, C_1, L_1, ..., F_K, C_K, L_K, F_q]            w = its state at F_q
  Fusion: SASRec  s(u, i) = (h_u + 0.1 w) · E_i          (official additive, full ranking)
          DIN     p = sigmoid(MLP([v_u; E_t; v_u * E_t; w]))   (official: w concatenated into the DNN input)
  Loss: the backbone's + lambda * mean_{p, k} (1 - cos(R H_{F_k}, c_k)), R = reversed M, H_{F_k} the ICT state
  at retrieved example k's feature token (official positions 0, 3, 6, 9; causal, so it has not seen C_k);
  lambda = 0 with SASRec, 1.0 with DIN (the official configs). ``cot=False`` (the official ``wocot``):
  [F_k, L_k] only, no reconstruction. ``k=0``: the ICT reads F_q alone, the same parameters and fusion without any
  example — the control that separates what the examples bring from what the extra user tower brings.
  ``ict_user=False`` drops e_u from F (official: it is there): the backbone SASRec has no user embedding, so
  "+ICT" against it mixes the examples with a user identity; without e_u the two compare on the same inputs.
  SASRec + ICT reads a 20-item window (``max_len``), the pool rows' history length, so that a query and the
  examples it retrieves are summarised over the same span (the project's SASRec reads 50: the backbone row of
  the comparison is SASRec with ``max_len=20``).

Sizes (official configs): SASRec d = 64, M and MLP_f one Linear; DIN d = 32, M 384-256-32, MLP_f 160-128-32
(ReLU between). Deviations, named: MiniLM (384-d) instead of BGE (768-d); retrieval excludes the query's
whole user (official: only the same user's later rows, which lets a row retrieve itself); the examples
are ordered by similarity instead of shuffled; ml-100k fields (user, item, title text) instead of Amazon's
brand and category. ``pool=None`` reads the default pool (``llmcf_offline.default_pool``: on ml-100k the committed
CoTs of 10% of the train rows, as the paper; elsewhere, or with ``pool_size``, RecGen writes CoTs for that many train
rows; cached). SASRec trains with the project's SASRec loss over every position of a window (the
official LLM-CF trains one row per target), each position its own query. ``ict_share`` < 1 (a CPU-cost
deviation; at every position the ICT costs ~15x SASRec's step on ml-100k, 2 CPU cores): in training, each batch
sends a random share of its positions through the ICT and fuses w there; the other positions train with h alone,
the backbone's loss unchanged. Evaluation always fuses w.
``similarity="cosine"`` normalises the mean history vectors before the inner product (official: raw inner
product, ``similarity="dot"``, the default). The mean of a few unit vectors of similar items is longer than that of
many varied ones, so with "dot" short-history pool rows score high for every query and fill most slots;
"cosine" ranks by direction only. ``user_field=True`` gives DIN a user-ID embedding (the official DIN input has
one); the ICT's own user embedding otherwise hands DIN + ICT a user field the plain DIN lacks.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import text_features
from .blocks import CausalEncoder
from .din import DIN
from .llmcf_offline import CoTPool, default_pool
from .sasrec import INIT, SASRec

RETRIEVALS = ("similar", "random")
SIMILARITIES = ("dot", "cosine")


def mlp(sizes) -> nn.Sequential:
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def ict_decoder(dim: int, n_layers: int = 2, n_heads: int = 2) -> nn.Module:
    from transformers import LlamaConfig, LlamaModel

    ffn = 32 * math.ceil(int(2 * 2 * dim / 3) / 32)  # official: dim_feedforward = 2d, SwiGLU hidden 2/3 of it, x32
    cfg = LlamaConfig(vocab_size=1, hidden_size=dim, intermediate_size=ffn, num_hidden_layers=n_layers,
                      num_attention_heads=n_heads, num_key_value_heads=n_heads, max_position_embeddings=128,
                      rms_norm_eps=1e-5, attention_dropout=0.0, use_cache=False,
                      bos_token_id=None, eos_token_id=None, pad_token_id=None)
    return LlamaModel(cfg)


class InContext(nn.Module):
    """Retrieval, tokens and the ICT decoder, shared by both backbones (see the module docstring)."""

    def __init__(self, split, pool: CoTPool, dim: int, k: int = 4, retrieval: str = "similar", cot: bool = True,
                 target_similarity: bool = True, map_hidden: tuple = (), feat_hidden: tuple = (),
                 encoder: str = "minilm", item_z: np.ndarray | None = None, retrieval_seed: int = 0,
                 similarity: str = "dot", ict_user: bool = True):
        super().__init__()
        self.ict_user = ict_user
        if retrieval not in RETRIEVALS:
            raise ValueError(f"unknown retrieval {retrieval!r}; valid: {list(RETRIEVALS)}")
        if similarity not in SIMILARITIES:
            raise ValueError(f"unknown similarity {similarity!r}; valid: {list(SIMILARITIES)}")
        self.similarity = similarity
        if not isinstance(k, int) or k < 0:
            raise ValueError(f"k is the number of retrieved examples, an integer >= 0 (0: no example); got {k!r}")
        if cot and not pool.has_cot:
            raise ValueError("this pool has no reasoning (a feature_pool): pass cot=False, or build_pool for CoTs")
        self.k, self.n_pos, self.retrieval, self.cot, self.target_similarity = k, (k + 1) // 2, retrieval, cot, target_similarity
        a = pool.arrays(getattr(split, "max_history", 20))
        for y, need in ((1, self.n_pos), (0, k // 2)):
            per_user = np.bincount(a["user"][a["label"] == y], minlength=split.n_users)
            if (a["label"] == y).sum() - per_user.max() < need:
                raise ValueError(f"the CoT pool has too few rows with label {y} outside any one user for k={k}; "
                                 f"build a larger pool")
        z = text_features(split, encoder, item_z)
        self.register_buffer("item_text", torch.cat([torch.zeros(1, z.shape[1]), torch.from_numpy(z)]))  # ids + 1
        for name in ("user", "item", "label", "hist"):
            self.register_buffer(f"p_{name}", torch.tensor(a[name]), persistent=False)
        self.register_buffer("p_cot", torch.tensor(pool.cot_z), persistent=False)
        self.register_buffer("p_hist_text", self.mean_text(self.p_hist), persistent=False)
        self.register_buffer("p_item_text", self.item_text[self.p_item + 1], persistent=False)
        g = torch.Generator().manual_seed(retrieval_seed)
        self.register_buffer("p_random", torch.rand(split.n_users, len(a["user"]), generator=g), persistent=False)
        dt = z.shape[1]
        self.user_emb = nn.Embedding(split.n_users, dim) if ict_user else None
        self.text_map = mlp([dt, *map_hidden, dim])
        dc = pool.cot_z.shape[1]  # CoT and item texts from one encoder (MiniLM) share M, as the official BGE map
        self.cot_map = self.text_map if dc == dt else mlp([dc, *map_hidden, dim])
        self.feature = mlp([(5 if ict_user else 4) * dim, *feat_hidden, dim])
        self.label_emb = nn.Embedding(2, dim)
        self.decoder = ict_decoder(dim)
        self.reconstruct = mlp([dim, *reversed(map_hidden), pool.cot_z.shape[1]])

    def mean_text(self, hist: torch.Tensor) -> torch.Tensor:
        """[R, M] ids + 1 (0 = padding) -> [R, d_text] mean item-text vector (0 for an empty history)."""
        n = (hist > 0).sum(-1, keepdim=True).clamp(min=1)
        return self.item_text[hist].sum(-2) / n

    def history_scores(self, hist_text: torch.Tensor) -> torch.Tensor:
        """[R, d_text] query mean history vectors -> [R, P] similarity to every pool row's mean history vector."""
        if self.similarity == "cosine":  # directions only: a short, coherent history is no longer a hub
            return F.normalize(hist_text, dim=-1) @ F.normalize(self.p_hist_text, dim=-1).T
        return hist_text @ self.p_hist_text.T  # official: inner product of the mean vectors

    def retrieve(self, users: torch.Tensor, hist_text: torch.Tensor, item: torch.Tensor | None) -> torch.Tensor:
        """[R] users, [R, d_text] query history texts, [R] target ids (or None) -> [R, K] pool rows."""
        if self.retrieval == "random":  # per row in training; seeded per user (one query each) at evaluation
            s = torch.rand(len(users), self.p_random.shape[1], device=users.device) if self.training else self.p_random[users]
        else:
            s = self.history_scores(hist_text)
            if item is not None and self.target_similarity:
                s = 0.5 * s + 0.5 * self.item_text[item + 1] @ self.p_item_text.T
        s = s.masked_fill(users[:, None] == self.p_user[None], -torch.inf)
        pos = s.masked_fill(self.p_label[None] == 0, -torch.inf).topk(self.n_pos, dim=1)
        neg = s.masked_fill(self.p_label[None] == 1, -torch.inf).topk(self.k // 2, dim=1)
        idx, score = torch.cat([pos.indices, neg.indices], 1), torch.cat([pos.values, neg.values], 1)
        return idx.gather(1, score.argsort(dim=1, stable=True))  # least similar first, the closest next to the query

    def tokens(self, users, state, hist_text, item_vec, item_text) -> torch.Tensor:
        user = [self.user_emb(users)] if self.ict_user else []
        return self.feature(torch.cat([*user, state, self.text_map(hist_text), item_vec,
                                       self.text_map(item_text)], -1))

    def forward(self, users, state, hist_text, item, item_vec, pool_state, pool_item_vec):
        """-> (w [R, d], reconstruction loss, retrieved [R, K]). ``state`` / ``item_vec``: the backbone's
        history state and target ID vector for each query (zeros when ranking); ``pool_state(hist)`` and
        ``pool_item_vec(ids + 1)`` compute the same for pool rows."""
        q_text = self.item_text[item + 1] if item is not None else self.item_text.new_zeros(len(users), self.item_text.shape[1])
        q = self.tokens(users, state, hist_text, item_vec, q_text)
        if self.k == 0:  # the control: no example, the ICT over the query's feature token alone
            return self.decoder(inputs_embeds=q[:, None]).last_hidden_state[:, -1], q.new_zeros(()), \
                users.new_zeros(len(users), 0)
        idx = self.retrieve(users, hist_text, item)
        uniq, inv = idx.unique(return_inverse=True)
        ex = self.tokens(self.p_user[uniq], pool_state(self.p_hist[uniq]), self.p_hist_text[uniq],
                         pool_item_vec(self.p_item[uniq] + 1), self.p_item_text[uniq])[inv]  # [R, K, d]
        parts = [ex, self.cot_map(self.p_cot[idx]), self.label_emb(self.p_label[idx])] if self.cot else \
                [ex, self.label_emb(self.p_label[idx])]
        seq = torch.cat([torch.stack(parts, 2).flatten(1, 2), q[:, None]], 1)  # [R, K * len(parts) + 1, d]
        h = self.decoder(inputs_embeds=seq).last_hidden_state
        recon = seq.new_zeros(())
        if self.cot:
            recon = (1 - F.cosine_similarity(self.reconstruct(h[:, :-1:len(parts)]), self.p_cot[idx], dim=-1)).mean()
        return h[:, -1], recon, idx


class LLMCFSASRec(SASRec):
    """The project's SASRec + ICT (ranking, full-sort NDCG@10). ``pool``: the CoT pool (``build_pool``)."""

    def __init__(self, split, pool: CoTPool | None = None, k: int = 4, retrieval: str = "similar", cot: bool = True,
                 recon_weight: float = 0.0, fusion: float = 0.1, dim: int = 64, encoder: str = "minilm",
                 item_z: np.ndarray | None = None, pool_size: int | None = None, recgen: str = "mixed", ict_share: float = 1.0,
                 n_layers: int = 2, n_heads: int = 2, max_len: int = 20, dropout: float = 0.2, loss_type: str = "ce",
                 init: str = INIT, similarity: str = "dot", ict_user: bool = True):
        super().__init__(split, dim, n_layers, n_heads, max_len, dropout, loss_type, init)  # the backbone, as sasrec
        if not 0 < ict_share <= 1:
            raise ValueError(f"ict_share is the share of training positions sent through the ICT, in (0, 1]; got {ict_share}")
        self.recon_weight, self.fusion, self.ict_share = recon_weight, fusion, ict_share
        z = text_features(split, encoder, item_z)  # a bad item table fails before any LLM work
        pool = pool if pool is not None else default_pool(split.dataset, pool_size, recgen)
        self.ctx = InContext(split, pool, dim, k, retrieval, cot, target_similarity=False, item_z=z, similarity=similarity,
                             ict_user=ict_user)
        self.last_retrieved = None

    def pool_state(self, hist: torch.Tensor) -> torch.Tensor:
        return self.encode(hist)[:, -1]

    def with_context(self, users, hist_text, h):
        """(h + fusion * w, recon) for states h [R, d] of queries with mean history texts ``hist_text``."""
        w, recon, self.last_retrieved = self.ctx(users, h, hist_text, None, torch.zeros_like(h), self.pool_state,
                                                 self.item_emb)
        return h + self.fusion * w, recon

    def loss(self, batch) -> torch.Tensor:
        seq, users = batch
        inp = seq[:, :-1]
        h = self.encode(inp)
        L = h.shape[1]
        ids, target = inp[:, -L:], seq[:, -L:]
        valid = target > 0
        # query at position j: the mean text of the window's items up to j (running sums, padding is 0)
        text = self.ctx.item_text[ids].cumsum(1) / (ids > 0).cumsum(1).clamp(min=1).unsqueeze(-1)
        u, qu, qt = h[valid], users[:, None].expand(-1, L)[valid], text[valid]
        recon = u.new_zeros(())
        if self.ict_share < 1:  # a random share of the positions through the ICT, the rest h alone
            pick = torch.rand(len(u), device=u.device) < self.ict_share
            if pick.any():
                fused, recon = self.with_context(qu[pick], qt[pick], u[pick])
                u = u.masked_scatter(pick[:, None], fused)
        else:
            u, recon = self.with_context(qu, qt, u)
        if self.loss_type == "ce":
            rec = F.cross_entropy(u @ self.item_emb.weight[1:].T, target[valid] - 1)
        else:
            from ..losses import sampled_bce

            neg = self.negatives(users, target.shape)[valid]
            rec = sampled_bce((u * self.item_emb(target[valid])).sum(-1), (u * self.item_emb(neg)).sum(-1))
        return rec + self.recon_weight * recon

    def score_all(self, users, stage):
        seq = CausalEncoder.trim(getattr(self, f"{stage}_seq")[users])
        u, _ = self.with_context(users, self.ctx.mean_text(seq), self.encode(seq)[:, -1])
        return u @ self.item_emb.weight[1:].T


class LLMCFDIN(DIN):
    """The project's DIN + ICT (CTR, AUC / LogLoss). ``pool``: the CoT pool (``build_pool``)."""

    def __init__(self, split, pool: CoTPool | None = None, k: int = 4, retrieval: str = "similar", cot: bool = True,
                 recon_weight: float = 1.0, dim: int = 32, encoder: str = "minilm", item_z: np.ndarray | None = None,
                 pool_size: int | None = None, recgen: str = "mixed", att_hidden: tuple = (80, 40), hidden: tuple = (200, 80),
                 dropout: float = 0.0, similarity: str = "dot", user_field: bool = False, ict_user: bool = True):
        super().__init__(split, dim, att_hidden, hidden, dropout, extra_dim=dim, user_field=user_field)  # din + w
        self.recon_weight = recon_weight
        z = text_features(split, encoder, item_z)  # a bad item table fails before any LLM work
        pool = pool if pool is not None else default_pool(split.dataset, pool_size, recgen)
        self.ctx = InContext(split, pool, dim, k, retrieval, cot, map_hidden=(256,), feat_hidden=(128,), item_z=z,
                             similarity=similarity, ict_user=ict_user)
        self.last_retrieved, self._recon = None, None

    def mean_item(self, hist: torch.Tensor) -> torch.Tensor:
        return self.item_emb(hist).sum(1) / (hist > 0).sum(1, keepdim=True).clamp(min=1)

    def predict(self, batch: dict) -> torch.Tensor:
        e_t = self.item_emb(batch["item"] + 1)
        v_u, _ = self.interest(e_t, batch["hist"])
        w, self._recon, self.last_retrieved = self.ctx(
            batch["user"], self.mean_item(batch["hist"]), self.ctx.mean_text(batch["hist"]), batch["item"], e_t,
            self.mean_item, self.item_emb)
        return self.head(batch, v_u, e_t, w)

    def loss(self, batch: dict) -> torch.Tensor:
        return super().loss(batch) + self.recon_weight * self._recon
