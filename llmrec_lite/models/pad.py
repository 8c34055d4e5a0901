"""PAD (Wang et al., "Pre-train, Align, and Disentangle: Empowering Sequential Recommendation with Large
Language Models", SIGIR 2025) on a SASRec backbone, in three stages trained one after the other:

1. Pre-train:  an ID SASRec (table E^id, encoder Enc^id), BCE with one sampled negative per position.
2. Align:      the aligned expert starts as a copy of it (E^al <- E^id, Enc^al <- Enc^id) and reads
               e^al_i = E^al_i + P^al(z_i)   (z_i = frozen LM embedding of item i's title, P = MLP), with
               L = BCE + lambda * MK-MMD({P^al(z_i)}, {E^al_i})   over the items of the batch
               (at most ``mmd_items`` of them, drawn at random: the kernel matrix is quadratic).
               The BCE term keeps E^al recommending while it moves toward the text distribution
               (``bce_in_alignment=False`` shows what alignment alone does: the IDs drift and forget).
3. Disentangle: three experts score every item, mixed by a gate that sees the item's popularity bin b(i):
               s(u, i) = sum_k w_k(b(i)) h^k_u · e^k_i,   w_k(b) = sigmoid(g_kb) / sum_k' sigmoid(g_k'b)
               ID expert (E^id, Enc^id: trainable), aligned expert (E^al, P^al frozen: what alignment
               learnt cannot be erased; Enc^al trainable), text expert (new P^tx, Enc^tx). Bins: 10 by
               interaction mass (each holds a tenth of the train interactions; unseen items join the rarest).
               The gate has its own learning rate ``gate_lr``: Adam moves a parameter by about lr per step,
               and with a few steps per epoch the gate would otherwise never leave its initial value
               (1e-2: chosen on ml-100k validation NDCG@10 among the trainer's 1e-3, 1e-2 and 1e-1).

``stages`` = ("pretrain", "align", "disentangle"); ``train_and_test`` fits each in turn (early stopping on
validation in each). Scores: stage 1 = ID expert, stage 2 = aligned expert, stage 3 = the gated mixture.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..data.split import Split
from ..losses import PAD_BANDWIDTHS, linear_mmd, mk_mmd, sampled_bce, single_kernel_mmd
from ..text import item_embeddings
from .base import Recommender
from .blocks import CausalEncoder, training_windows

MMD = {"multi": mk_mmd, "single": single_kernel_mmd, "linear": linear_mmd}
EXPERTS = ("id", "aligned", "text")


def popularity_bins(popularity: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Bin of each item (0 = rarest) such that each bin holds about 1/n_bins of all interactions."""
    order = np.argsort(popularity, kind="stable")
    mass = np.cumsum(popularity[order]) / max(popularity.sum(), 1)
    bins = np.empty(len(popularity), np.int64)
    bins[order] = np.minimum((mass * n_bins).astype(np.int64), n_bins - 1)
    bins[popularity == 0] = 0
    return bins


def projector(d_in: int, dim: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, dim), nn.GELU(), nn.Linear(dim, dim))


class PAD(Recommender):
    stages = ("pretrain", "align", "disentangle")

    def __init__(self, split: Split, encoder: str = "minilm", item_z: np.ndarray | None = None, dim: int = 64,
                 n_layers: int = 2, n_heads: int = 2, max_len: int = 50, dropout: float = 0.2,
                 mmd_weight: float = 1.0, kernel: str = "multi", bce_in_alignment: bool = True,
                 freeze_aligned: bool = True, n_bins: int = 10, until: str = "disentangle", mmd_items: int = 512,
                 gate_lr: float | None = 1e-2, encoder_kwargs: dict | None = None):
        super().__init__(split)
        if until not in PAD.stages:
            raise ValueError(f"unknown stage {until!r}; valid: {list(PAD.stages)}")
        self.stages = PAD.stages[:PAD.stages.index(until) + 1]  # e.g. until="align": stop after alignment
        if kernel not in MMD:
            raise ValueError(f"unknown kernel {kernel!r}; valid: {sorted(MMD)}")
        if item_z is None:
            item_z = item_embeddings(split.dataset.item_texts, encoder, **(encoder_kwargs or {}))
        if item_z.shape[0] != self.n_items:
            raise ValueError(f"item embeddings have {item_z.shape[0]} rows, the dataset has {self.n_items} items")
        self.mmd_weight, self.kernel, self.bce_in_alignment = mmd_weight, kernel, bce_in_alignment
        self.freeze_aligned, self.max_len, self.dim, self.mmd_items = freeze_aligned, max_len, dim, mmd_items
        self.gate_lr = gate_lr  # None: the trainer's lr
        self.register_buffer("z", torch.cat([torch.zeros(1, item_z.shape[1]), torch.as_tensor(item_z, dtype=torch.float32)]))
        self.tables = nn.ModuleDict({k: nn.Embedding(self.n_items + 1, dim, padding_idx=0) for k in ("id", "aligned")})
        for t in self.tables.values():
            nn.init.xavier_normal_(t.weight)
            with torch.no_grad():
                t.weight[0] = 0
        self.proj = nn.ModuleDict({k: projector(item_z.shape[1], dim) for k in ("aligned", "text")})
        self.encoders = nn.ModuleDict({k: CausalEncoder(dim, n_layers, n_heads, max_len, dropout) for k in EXPERTS})
        bins = popularity_bins(split.item_popularity, n_bins)
        self.register_buffer("bins", torch.from_numpy(bins))
        prior = torch.linspace(-1, 1, n_bins)  # rare -> popular: ID expert up, text expert down, aligned flat
        self.gate = nn.Parameter(torch.stack([prior, torch.zeros(n_bins), -prior]))  # [3 experts, n_bins]
        for stage in ("valid", "test"):
            self.register_buffer(f"{stage}_seq", torch.from_numpy(split.sequences(stage, max_len)), persistent=False)
        self.train_hist = [h + 1 for h in split.histories("train") if len(h) >= 2]
        self.stage = None
        self.set_stage("pretrain")

    # ------------------------------------------------------------------------------ stages
    def set_stage(self, stage: str):
        """Switch stage: copies the ID expert into the aligned one when alignment starts, and sets which
        parameters train (the trainer's optimiser only updates parameters with requires_grad)."""
        if stage not in self.stages:
            raise ValueError(f"unknown stage {stage!r}; valid: {list(self.stages)}")
        if stage == "align" and self.stage == "pretrain":
            with torch.no_grad():
                self.tables["aligned"].weight.copy_(self.tables["id"].weight)
            self.encoders["aligned"].load_state_dict(self.encoders["id"].state_dict())
        trainable = {"pretrain": ["tables.id", "encoders.id"],
                     "align": ["tables.aligned", "proj.aligned", "encoders.aligned"],
                     "disentangle": ["tables.id", "encoders.id", "encoders.aligned", "proj.text", "encoders.text", "gate"]
                     + ([] if self.freeze_aligned else ["tables.aligned", "proj.aligned"])}[stage]
        for name, p in self.named_parameters():
            p.requires_grad = any(name == t or name.startswith(t + ".") for t in trainable)
        self.stage = stage
        return self

    def param_groups(self, lr: float) -> list[dict]:
        rest = [p for n, p in self.named_parameters() if n != "gate"]
        return [{"params": rest, "lr": lr}, {"params": [self.gate], "lr": self.gate_lr or lr}]

    def gate_weights(self) -> torch.Tensor:
        """[3, n_bins]: each expert's weight per popularity bin; columns sum to 1."""
        g = torch.sigmoid(self.gate)
        return g / g.sum(0, keepdim=True)

    # ------------------------------------------------------------------------------ representation
    def item_table(self, expert: str, items: torch.Tensor | None = None) -> torch.Tensor:
        """Item vectors e^k (rows ``items`` of the +1-shifted ids, or all real items)."""
        idx = torch.arange(1, self.n_items + 1, device=self.z.device) if items is None else items
        if expert == "id":
            return self.tables["id"](idx)
        text = self.proj[expert](self.z[idx]) * (idx > 0).unsqueeze(-1)
        return text + self.tables["aligned"](idx) if expert == "aligned" else text

    def encode(self, expert: str, seq: torch.Tensor) -> torch.Tensor:
        seq = CausalEncoder.trim(seq)
        return self.encoders[expert](self.item_table(expert, seq), seq == 0)

    @torch.no_grad()
    def alignment_vectors(self, table: str = "aligned") -> tuple[torch.Tensor, torch.Tensor]:
        """(P^al(z), E) for all items: the projected text vectors and an ID table ("aligned", or "id":
        before stage 2 the aligned table is a copy of it)."""
        idx = torch.arange(1, self.n_items + 1, device=self.z.device)
        was = self.training
        self.eval()
        text, ids = self.proj["aligned"](self.z[idx]), self.tables[table](idx)
        self.train(was)
        return text, ids

    @torch.no_grad()
    def alignment_stats(self, table: str = "aligned") -> dict[str, float]:
        """How far apart the projected text vectors and an ID table are over all items, by each estimator:
        MK-MMD, single-kernel MMD, linear-kernel MMD (the squared distance of the means), and how far the
        table has moved from the pre-trained IDs (relative Frobenius norm)."""
        text, ids = self.alignment_vectors(table)
        drift = (self.tables[table].weight - self.tables["id"].weight).norm() / self.tables["id"].weight.norm()
        return {"drift from pre-trained IDs": drift.item(), "MK-MMD": mk_mmd(text, ids).item(),
                "single-kernel MMD": single_kernel_mmd(text, ids).item(), "linear-kernel MMD": linear_mmd(text, ids).item()}

    def experts(self) -> tuple[str, ...]:
        return {"pretrain": ("id",), "align": ("aligned",), "disentangle": EXPERTS}[self.stage]

    # ------------------------------------------------------------------------------ training
    def train_batches(self, batch_size, rng):
        for window, _ in training_windows(self.train_hist, batch_size, self.max_len, rng, self.device):
            yield window

    def alignment_loss(self, items: torch.Tensor) -> torch.Tensor:
        """MMD between the projected text vectors and the aligned ID vectors of ``items`` (+1 ids)."""
        return MMD[self.kernel](self.proj["aligned"](self.z[items]), self.tables["aligned"](items))

    def loss(self, seq: torch.Tensor) -> torch.Tensor:
        target = seq[:, 1:]
        neg = torch.randint(1, self.n_items + 1, target.shape, device=seq.device)
        pos_logit = neg_logit = 0
        w = self.gate_weights()
        for expert in self.experts():
            h = self.encode(expert, seq[:, :-1])
            t, n = target[:, -h.shape[1]:], neg[:, -h.shape[1]:]
            gp, gn = (w[EXPERTS.index(expert), self.bins[t - 1]], w[EXPERTS.index(expert), self.bins[n - 1]]) \
                if self.stage == "disentangle" else (1.0, 1.0)
            pos_logit = pos_logit + gp * (h * self.item_table(expert, t)).sum(-1)
            neg_logit = neg_logit + gn * (h * self.item_table(expert, n)).sum(-1)
        valid = target[:, -pos_logit.shape[1]:] > 0
        loss = sampled_bce(pos_logit[valid], neg_logit[valid])
        if self.stage == "align":
            items = torch.unique(torch.cat([seq[seq > 0], neg.flatten()]))
            if len(items) > self.mmd_items:  # an unbiased estimate on a random subset: O(n^2) kernels stay cheap
                items = items[torch.randperm(len(items), device=items.device)[:self.mmd_items]]
            mmd = self.mmd_weight * self.alignment_loss(items)
            loss = loss + mmd if self.bce_in_alignment else mmd
        return loss

    def score_all(self, users, stage):
        seq = getattr(self, f"{stage}_seq")[users]
        w = self.gate_weights()[:, self.bins]  # [3, n_items]
        scores = 0
        for expert in self.experts():
            s = self.encode(expert, seq)[:, -1] @ self.item_table(expert).T
            scores = scores + (w[EXPERTS.index(expert)] * s if self.stage == "disentangle" else s)
        return scores


class IDTextConcat(Recommender):
    """The simple fusion PAD compares against: one SASRec over e_i = W [E_i ; P(z_i)] (ID table and
    projected LM vector concatenated, then mixed by a linear layer), trained from scratch with BCE."""

    def __init__(self, split: Split, encoder: str = "minilm", item_z: np.ndarray | None = None, dim: int = 64,
                 n_layers: int = 2, n_heads: int = 2, max_len: int = 50, dropout: float = 0.2,
                 encoder_kwargs: dict | None = None):
        super().__init__(split)
        if item_z is None:
            item_z = item_embeddings(split.dataset.item_texts, encoder, **(encoder_kwargs or {}))
        self.register_buffer("z", torch.cat([torch.zeros(1, item_z.shape[1]), torch.as_tensor(item_z, dtype=torch.float32)]))
        self.id_emb = nn.Embedding(self.n_items + 1, dim, padding_idx=0)
        nn.init.xavier_normal_(self.id_emb.weight)
        self.proj, self.mix = projector(item_z.shape[1], dim), nn.Linear(2 * dim, dim)
        self.seq_encoder = CausalEncoder(dim, n_layers, n_heads, max_len, dropout)
        for stage in ("valid", "test"):
            self.register_buffer(f"{stage}_seq", torch.from_numpy(split.sequences(stage, max_len)), persistent=False)
        self.max_len = max_len
        self.train_hist = [h + 1 for h in split.histories("train") if len(h) >= 2]

    def item_vec(self, idx: torch.Tensor) -> torch.Tensor:
        return self.mix(torch.cat([self.id_emb(idx), self.proj(self.z[idx])], -1)) * (idx > 0).unsqueeze(-1)

    def encode(self, seq):
        seq = CausalEncoder.trim(seq)
        return self.seq_encoder(self.item_vec(seq), seq == 0)

    train_batches = PAD.train_batches

    def loss(self, seq):
        h = self.encode(seq[:, :-1])
        target = seq[:, -h.shape[1]:]
        valid = target > 0
        h, target = h[valid], target[valid]
        neg = torch.randint(1, self.n_items + 1, target.shape, device=h.device)
        return sampled_bce((h * self.item_vec(target)).sum(-1), (h * self.item_vec(neg)).sum(-1))

    def score_all(self, users, stage):
        seq = getattr(self, f"{stage}_seq")[users]
        return self.encode(seq)[:, -1] @ self.item_vec(torch.arange(1, self.n_items + 1, device=seq.device)).T
