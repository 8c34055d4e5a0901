"""PAD (Wang et al., "Pre-train, Align, and Disentangle: Empowering Sequential Recommendation with Large
Language Models", SIGIR 2025; official code Applied-Machine-Learning-Lab/PAD, model/model_mmd_ada.py,
model/encoders.py) on the project's SASRec, in three stages trained one after the other:

1. Pre-train:  the ID expert *is* the project's SASRec (``SASRec(loss_type="bce")``: table E^id, encoder
               Enc^id; BCE with one negative per position, mean over positives + mean over negatives).
2. Align:      the aligned expert starts as a copy of it (E^al <- E^id, Enc^al <- Enc^id) and reads the
               official ``modal_cat`` fusion of the ID vector and the projected text vector
                   e^al_i = GELU(W [Dropout_0.1(E^al_i ; P^al(z_i))])   (z_i = frozen LM vector, P = MLP)
               with L = BCE + lambda * MK-MMD({P^al(z_i)}, {E^al_i})   over the items of the batch
               (at most ``mmd_items`` of them, drawn at random: the kernel matrix is quadratic).
               ``mmd_weight`` is in official units: lambda = 0.2 times the MMD of the *sum* of the five
               Gaussian kernels (tllib), i.e. 0.2 x 5 x ``losses.mk_mmd`` (which averages them); the
               single-kernel and linear MMD ablations are weighted by ``mmd_weight`` alone.
               The BCE term keeps E^al recommending while it moves toward the text distribution
               (``bce_in_alignment=False`` shows what alignment alone does: the IDs drift and forget).
3. Disentangle: three experts score every item, mixed by a gate that sees the item's popularity bin b(i):
               s(u, i) = sum_k w_k(b(i)) h^k_u · e^k_i,   w_k(b) = sigmoid(g_kb) / sum_k' sigmoid(g_k'b)
               ID expert (E^id, Enc^id), aligned expert (E^al, P^al, fusion, Enc^al), text expert (new
               P^tx, Enc^tx). All parameters train, as the official ``freeze6`` (``freeze_aligned=True``:
               the aligned table and projector stay as alignment left them). Gate start ``gate_init``:
               "official" (ID 0.9 -> 0.0 and text 0.1 -> 1.0 from popular to rare bins, aligned -4.1 -> -5.0,
               i.e. the aligned expert starts at ~0.5-1.3% weight) or "prior" (ID -1..1, aligned 0, text 1..-1).
               Bins: 10 by interaction mass (each holds a tenth of the train interactions; unseen items join
               the rarest). The gate has its own learning rate ``gate_lr``: Adam moves a parameter by
               about lr per step, and with few steps per epoch the gate would otherwise hardly leave its start.

Deviations, named: the project's shared SASRec encoder (2 pre-norm layers, GELU, FFN d, max_len 50, d 64)
instead of the official 5 post-norm layers, FFN 4d, d 128, max_len 20; P = Linear-GELU-Linear instead
of Linear-GELU + 4 x (Dropout, Linear, GELU); MMD over the batch's distinct items (<= 512) instead of all
B x 21 x 2 rows incl. padding; Adam with one lr for all stages (official AdamW, 1e-5 / 1e-5 / 1e-4,
weight decay 0.1). ``gate_init``, ``freeze_aligned`` and ``gate_lr`` defaults: chosen on ml-100k
validation NDCG@10 (notebook 03, "Stage 3 choices").

``stages`` = ("pretrain", "align", "disentangle"); ``train_and_test`` fits each in turn (early stopping on
validation in each). Scores: stage 1 = ID expert, stage 2 = aligned expert, stage 3 = the gated mixture.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..data.split import Split
from ..losses import PAD_BANDWIDTHS, linear_mmd, mk_mmd, sampled_bce, single_kernel_mmd
from .base import Recommender, SequentialRecommender, text_features
from .blocks import CausalEncoder
from .sasrec import SASRec, item_table

MMD = {"multi": mk_mmd, "single": single_kernel_mmd, "linear": linear_mmd}
EXPERTS = ("id", "aligned", "text")
GATE_INITS = ("official", "prior")


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


def gate_start(kind: str, n_bins: int) -> torch.Tensor:
    """[3 experts, n_bins] gate logits, bins rare -> popular."""
    if kind == "official":  # model_mmd_ada.py: linspace(1, 0, 11) / linspace(g2, g2 - 1, 11), g2 = -4 / linspace(0, 1, 11)
        k = torch.arange(n_bins, 0, -1, dtype=torch.float32) / n_bins  # official bin index / 10, popular = 0.1
        return torch.stack([1 - k, -4 - k, k])
    prior = torch.linspace(-1, 1, n_bins)
    return torch.stack([prior, torch.zeros(n_bins), -prior])


class PAD(Recommender):
    stages = ("pretrain", "align", "disentangle")
    # stage 1 trains ``self.sasrec`` exactly as the standalone SASRec-BCE run (same start, same seeded trainer; the
    # other parts stay as built): the model store shares that run both ways (experiment._shared_stage)
    shared_stage = ("pretrain", "sasrec", "sasrec", {"loss_type": "bce"}, ("dim", "n_layers", "n_heads", "max_len", "dropout"))

    def __init__(self, split: Split, encoder: str = "minilm", item_z: np.ndarray | None = None, dim: int = 64,
                 n_layers: int = 2, n_heads: int = 2, max_len: int = 50, dropout: float = 0.2,
                 mmd_weight: float = 0.2, kernel: str = "multi", bce_in_alignment: bool = True,
                 freeze_aligned: bool = False, gate_init: str = "official", n_bins: int = 10,
                 until: str = "disentangle", mmd_items: int = 512, gate_lr: float | None = 1e-2,
                 fusion_dropout: float = 0.1, encoder_kwargs: dict | None = None):
        super().__init__(split)
        if until not in PAD.stages:
            raise ValueError(f"unknown stage {until!r}; valid: {list(PAD.stages)}")
        self.stages = PAD.stages[:PAD.stages.index(until) + 1]  # e.g. until="align": stop after alignment
        if kernel not in MMD:
            raise ValueError(f"unknown kernel {kernel!r}; valid: {sorted(MMD)}")
        if gate_init not in GATE_INITS:
            raise ValueError(f"unknown gate_init {gate_init!r}; valid: {list(GATE_INITS)}")
        item_z = text_features(split, encoder, item_z, encoder_kwargs)
        # built first: with the same seed its start is the standalone SASRec's, so stage 1 reproduces `sasrec`
        self.sasrec = SASRec(split, dim, n_layers, n_heads, max_len, dropout, loss_type="bce")
        self.mmd_weight, self.kernel, self.bce_in_alignment = mmd_weight, kernel, bce_in_alignment
        self.freeze_aligned, self.dim, self.mmd_items = freeze_aligned, dim, mmd_items
        self.gate_lr = gate_lr  # None: the trainer's lr
        self.register_buffer("z", torch.cat([torch.zeros(1, item_z.shape[1]), torch.as_tensor(item_z, dtype=torch.float32)]))
        self.aligned_emb = item_table(self.n_items, dim)
        self.fuse = nn.Sequential(nn.Dropout(fusion_dropout), nn.Linear(2 * dim, dim), nn.GELU())  # official CAT
        self.proj = nn.ModuleDict({k: projector(item_z.shape[1], dim) for k in ("aligned", "text")})
        self.encoders = nn.ModuleDict({k: CausalEncoder(dim, n_layers, n_heads, max_len, dropout) for k in EXPERTS[1:]})
        self.register_buffer("bins", torch.from_numpy(popularity_bins(split.item_popularity, n_bins)))
        self.gate = nn.Parameter(gate_start(gate_init, n_bins))  # [3 experts, n_bins]
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
                self.aligned_emb.weight.copy_(self.sasrec.item_emb.weight)
            self.encoders["aligned"].load_state_dict(self.sasrec.seq_encoder.state_dict())
        trainable = {"pretrain": ["sasrec"], "align": ["aligned_emb", "fuse", "proj.aligned", "encoders.aligned"],
                     "disentangle": ["sasrec", "fuse", "encoders", "proj.text", "gate"]
                     + ([] if self.freeze_aligned else ["aligned_emb", "proj.aligned"])}[stage]
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
    def table(self, expert: str) -> nn.Embedding:
        return self.sasrec.item_emb if expert == "id" else self.aligned_emb

    def item_table(self, expert: str, items: torch.Tensor | None = None) -> torch.Tensor:
        """Item vectors e^k (rows ``items`` of the +1-shifted ids, or all real items)."""
        idx = torch.arange(1, self.n_items + 1, device=self.z.device) if items is None else items
        if expert == "id":
            return self.sasrec.item_emb(idx)
        text = self.proj[expert](self.z[idx])
        if expert == "aligned":
            text = self.fuse(torch.cat([self.aligned_emb(idx), text], -1))
        return text * (idx > 0).unsqueeze(-1)

    def encode(self, expert: str, seq: torch.Tensor) -> torch.Tensor:
        if expert == "id":
            return self.sasrec.encode(seq)
        seq = CausalEncoder.trim(seq)
        return self.encoders[expert](self.item_table(expert, seq), seq == 0)

    @torch.no_grad()
    def alignment_vectors(self, table: str = "aligned") -> tuple[torch.Tensor, torch.Tensor]:
        """(P^al(z), E) for all items: the projected text vectors and an ID table ("aligned", or "id":
        before stage 2 the aligned table is a copy of it)."""
        idx = torch.arange(1, self.n_items + 1, device=self.z.device)
        was = self.training
        self.eval()
        text, ids = self.proj["aligned"](self.z[idx]), self.table(table)(idx)
        self.train(was)
        return text, ids

    @torch.no_grad()
    def alignment_stats(self, table: str = "aligned") -> dict[str, float]:
        """How far apart the projected text vectors and an ID table are over all items, by each estimator:
        MK-MMD, single-kernel MMD, linear-kernel MMD (the squared distance of the means), and how far the
        table has moved from the pre-trained IDs (relative Frobenius norm)."""
        text, ids = self.alignment_vectors(table)
        drift = (self.table(table).weight - self.sasrec.item_emb.weight).norm() / self.sasrec.item_emb.weight.norm()
        return {"drift from pre-trained IDs": drift.item(), "MK-MMD": mk_mmd(text, ids).item(),
                "single-kernel MMD": single_kernel_mmd(text, ids).item(), "linear-kernel MMD": linear_mmd(text, ids).item()}

    def experts(self) -> tuple[str, ...]:
        return {"pretrain": ("id",), "align": ("aligned",), "disentangle": EXPERTS}[self.stage]

    # ------------------------------------------------------------------------------ training
    def train_batches(self, batch_size, rng):
        return self.sasrec.train_batches(batch_size, rng)

    def alignment_loss(self, items: torch.Tensor) -> torch.Tensor:
        """lambda x MMD between the projected text vectors and the aligned ID vectors of ``items`` (+1 ids),
        lambda in official units (see the module docstring)."""
        scale = len(PAD_BANDWIDTHS) if self.kernel == "multi" else 1
        return self.mmd_weight * scale * MMD[self.kernel](self.proj["aligned"](self.z[items]), self.aligned_emb(items))

    def loss(self, batch) -> torch.Tensor:
        if self.stage == "pretrain":
            return self.sasrec.loss(batch)
        seq, users = batch
        target = seq[:, 1:]
        neg = self.sasrec.negatives(users, target.shape)
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
            mmd = self.alignment_loss(items)
            loss = loss + mmd if self.bce_in_alignment else mmd
        return loss

    def score_all(self, users, stage):
        if self.stage == "pretrain":
            return self.sasrec.score_all(users, stage)
        seq = getattr(self.sasrec, f"{stage}_seq")[users]
        w = self.gate_weights()[:, self.bins]  # [3, n_items]
        scores = 0
        for expert in self.experts():
            s = self.encode(expert, seq)[:, -1] @ self.item_table(expert).T
            scores = scores + (w[EXPERTS.index(expert)] * s if self.stage == "disentangle" else s)
        return scores


class IDTextConcat(SequentialRecommender):
    """The simple fusion PAD compares against: one SASRec over e_i = W [E_i ; P(z_i)] (ID table and
    projected LM vector concatenated, then mixed by a linear layer), trained from scratch with the SASRec
    BCE (same table initialisation, encoder, windows and negatives as ``sasrec``)."""

    def __init__(self, split: Split, encoder: str = "minilm", item_z: np.ndarray | None = None, dim: int = 64,
                 n_layers: int = 2, n_heads: int = 2, max_len: int = 50, dropout: float = 0.2,
                 encoder_kwargs: dict | None = None):
        super().__init__(split, max_len)
        item_z = text_features(split, encoder, item_z, encoder_kwargs)
        self.register_buffer("z", torch.cat([torch.zeros(1, item_z.shape[1]), torch.as_tensor(item_z, dtype=torch.float32)]))
        self.id_emb = item_table(self.n_items, dim)
        self.proj, self.mix = projector(item_z.shape[1], dim), nn.Linear(2 * dim, dim)
        self.seq_encoder = CausalEncoder(dim, n_layers, n_heads, max_len, dropout)

    def item_vec(self, idx: torch.Tensor) -> torch.Tensor:
        return self.mix(torch.cat([self.id_emb(idx), self.proj(self.z[idx])], -1)) * (idx > 0).unsqueeze(-1)

    def encode(self, seq):
        seq = CausalEncoder.trim(seq)
        return self.seq_encoder(self.item_vec(seq), seq == 0)

    def loss(self, batch):
        seq, users = batch
        h = self.encode(seq[:, :-1])
        target = seq[:, -h.shape[1]:]
        valid = target > 0
        neg = self.negatives(users, target.shape)
        return sampled_bce((h * self.item_vec(target)).sum(-1)[valid], (h * self.item_vec(neg)).sum(-1)[valid])

    def score_all(self, users, stage):
        seq = getattr(self, f"{stage}_seq")[users]
        return self.encode(seq)[:, -1] @ self.item_vec(torch.arange(1, self.n_items + 1, device=seq.device)).T
