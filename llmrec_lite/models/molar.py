"""Molar (Luo et al., "Molar: Multimodal LLMs with Collaborative Filtering Alignment for Enhanced Sequential
Recommendation", arXiv 2412.18176; code: anonymous.4open.science/r/Molar-8B06, an anonymous mirror that cannot
be reached offline, so the paper's text is the reference here), with SmolLM2 on a CPU.

MIRM (item model). A decoder LM reads each item's structured attributes (``item_attributes``: title, brand,
category path, description on Amazon; title, year, genres on MovieLens). ``mirm_pooling``:
    "last": the paper's. The instruction prompt "Compress the text into embedding. Item information: <attributes>.
            [Cur_Item]" (its Fig. 2, no image) and the hidden state at its last token, last layer (Eq. 1).
            [Cur_Item] is plain text: a new special token would start untrained in a frozen LM.
    "mean": ours. The mean over the attribute prompt's tokens at layer 15 (the best SmolLM2 view in notebook 01).
The vectors are centred over the catalogue and unit-normalised (a decoder's space needs it, notebook 01), frozen
and cached. ``mirm_finetune=True`` first LoRA-fine-tunes the LM on the paper's text tasks (``mirm_examples``,
the run's seed): (a) attributes -> the item's description, (b) a user's last train items -> the next one. The
third, image-text alignment, needs images: none are available offline.

DUEG (user model). Pre-trained decoder layers ``layers`` = (a, b) of the LM, without its word-embedding layer, read
the sequence of item vectors:
    x_i = W_in z_i   (+ E^id_i with fusion="early")                 [H = the LM's width]
    h_1..h_T = Norm(Layer_a .. Layer_{b-1}(x_{s_1} .. x_{s_T}))      rotary positions, causal; all train
    u_t = W_u h_t ,   v_i = W_v x_i ,   s(u_t, i) = u_t . v_i        [d = ``dim``]
    L_rec = BCE, one negative per position (``losses.sampled_bce``: mean over positives + mean over negatives)

Post-alignment (fusion="post", the paper's). Stage "id" trains the project's SASRec (BCE) on the same window as
DUEG (``max_len``), the ID-based model that carries the collaborative signal; stage "content" freezes it and trains
DUEG with (Eq. 4-5)
    L = L_rec + lambda * [ InfoNCE_tau(u^c -> u^id) + InfoNCE_tau(u^id -> u^c) ]   (``losses.symmetric_info_nce``)
u^c_b = u_T of user b's training window, u^id_b = SASRec's state on the same window, cosine similarities; the
batch's other users are the negatives. ``align_loss="one-way"``: the first term only (our first pass). At test only
the content model scores; the ID model is a teacher. fusion="early" adds a trainable ID table to DUEG's input (the
early fusion the paper argues against; it has no experiment on it); fusion="none" is content only. ``id_model``:
an already fitted SASRec (copied, frozen) in place of stage "id". Stage "id" *is* the standalone SASRec-BCE run of
the same window and trainer settings, so the model store shares it (``shared_stage``).

Settings and deviations, each with the validation number behind it (amazon-scientific validation NDCG@10; first
pass ``benchmarks/molar_sweep.py``, patience 5; second pass ``benchmarks/molar_validation.py``, patience 20):
- SmolLM2-135M instead of Qwen2-VL-2B; one pre-trained layer in DUEG (``layers=(0, 1)``): 1 / 2 / 4 layers
  0.0424 / 0.0415 / 0.0424 at 12.0 / 22.7 / 42.5 s per epoch (first pass).
- lm_lr = 1e-3 for the LM layers (the paper: 1e-4 peak): 1e-5 / 1e-4 / 1e-3 0.0414 / 0.0415 / 0.0447 (first pass).
- No warm-up and cosine schedule (the paper's, over its 5 epochs): a constant rate and early stopping on validation
  (patience 20, at most 400 epochs) on data a thousand times smaller. ``schedule="warmup-cosine"`` runs the paper's
  (third pass, on a GPU, against the default run beside it, 0.0465): a decay to 0 at epoch 50 / 100 / 200 read
  0.0461 / 0.0488 / 0.0461. The default's own settings read 0.0483 on the CPU (0.0018 from the device alone), so
  no schedule length stands out: kept constant.
- MIRM is frozen in the main stage (the paper trains it with DUEG): training it runs the LM over every item of every
  batch and over the whole catalogue at each validation. The closest measured step, MIRM's LoRA fine-tune on the
  paper's text tasks before the main stage, moved validation by +0.0007 (second pass, below).
- No [User] token by default (the paper's DUEG reads one after the sequence and takes its state): we predict at
  every position as SASRec does, T targets per window instead of one. ``user_token=True`` adds it. Third pass,
  amazon-scientific (about 7 items per user): 0.0518 against 0.0465 (+0.0053, one seed). Fourth pass, ml-100k
  (long histories, 20 targets per window without it): 0.0460 against 0.0793 (-0.0333). What it gains on short
  histories it loses six times over on long ones, so the default, and the 3-seed comparison, read no token.
- tau = 0.1 (the paper gives none): 0.05 / 0.1 / 0.5 0.0413 / 0.0415 / 0.0403 (first pass).
- Second pass, one change at a time from lambda 0.1, the symmetric loss and mean pooling (seed 2020):
  - lambda = 0.3 (the paper gives none): 0.1 / 0.3 / 1 read 0.0448 / 0.0483 / 0.0481.
  - The symmetric loss of Eq. 4 is kept, the paper's form: one-way read 0.0458 against 0.0448, a gap a third of
    lambda's, from one seed.
  - Deviation: MIRM's vector is the mean of layer 15 over the attribute prompt, not the paper's last-token state:
    its instruction prompt and last token, last layer, read 0.0400 against 0.0448. A 135M LM was never trained to
    compress a text into its last state; the paper's 2B model is fine-tuned to do so with DUEG.
  - MIRM's LoRA fine-tune (the paper's text tasks, 128 examples each) is off by default: 0.0456 against 0.0448,
    a gain a fifth of lambda's from one seed, for a fine-tune and a second pass over the catalogue.
- 64 prompt tokens per item, 128 fine-tuning examples per task, a 64-d scoring head, training windows grouped by
  length (``length_buckets``; the LM layers pay for padding as for items).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from ..data.split import Split
from ..losses import in_batch_info_nce, sampled_bce, symmetric_info_nce
from ..text import mirm as _mirm
from ..text.layers import slice_copy
from ..text.mirm import (CUR_ITEM, FIELDS, MIRM_POOLINGS, item_attributes, mirm_examples,  # noqa: F401
                         mirm_finetune, mirm_vectors, paper_prompts)
from .base import SequentialRecommender, text_features
from .blocks import CausalEncoder, training_windows
from .sasrec import SASRec, item_table

FUSIONS = ("post", "early", "none")
ALIGN_LOSSES = ("symmetric", "one-way")
SCHEDULES = ("constant", "warmup-cosine")


class Molar(SequentialRecommender):
    # stage "id" trains ``self.sasrec`` exactly as the standalone SASRec-BCE run of the same width and window (built
    # first, same seeded trainer): the model store shares that run both ways (experiment._shared_stage)
    shared_stage = ("id", "sasrec", "sasrec", {"loss_type": "bce"}, ("dim", "max_len"))

    def __init__(self, split: Split, encoder: str = "smollm2", item_z: np.ndarray | None = None,
                 encoder_kwargs: dict | None = None, lm=None, layers: tuple = (0, 1), fusion: str = "post",
                 align_weight: float = 0.3, tau: float = 0.1, align_loss: str = "symmetric", dim: int = 64,
                 max_len: int = 20, dropout: float = 0.1, lm_lr: float = 1e-3, mirm_fields: str = "all",
                 mirm_pooling: str = "mean", mirm_finetune: bool = False, seed: int = 0,
                 length_buckets: bool = True, id_model: SASRec | None = None, user_token: bool = False,
                 schedule: str = "constant", schedule_epochs: int = 100):
        super().__init__(split, max_len)
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; valid: {list(FUSIONS)}")
        if align_loss not in ALIGN_LOSSES:
            raise ValueError(f"unknown align_loss {align_loss!r}; valid: {list(ALIGN_LOSSES)}")
        if schedule not in SCHEDULES or schedule_epochs < 2:
            raise ValueError(f"schedule={schedule!r}, schedule_epochs={schedule_epochs}: valid schedules "
                             f"{list(SCHEDULES)}, schedule_epochs at least 2")
        self.schedule, self.schedule_epochs = schedule, schedule_epochs
        if item_z is None:
            with torch.random.fork_rng(devices=[]):  # a (cached or not) fine-tune leaves the model's start unchanged
                ft = _mirm.mirm_finetune(split, encoder, seed=seed) if mirm_finetune else None  # (the flag shadows the name)
                item_z = _mirm.mirm_vectors(split, encoder, mirm_fields, ft, mirm_pooling, **(encoder_kwargs or {}))
        z = text_features(split, item_z=item_z, center=True)
        if id_model is not None and (fusion != "post" or id_model.n_items != self.n_items
                                     or id_model.item_emb.embedding_dim != dim):
            raise ValueError(f"id_model: a SASRec fitted on this split with dim={dim}, for fusion='post' only")
        # built first: with the same seed, stage "id" reproduces the standalone `sasrec --set loss_type=bce`;
        # ``id_model``: an already fitted SASRec (copied, frozen) replaces stage "id"
        self.sasrec = None if fusion != "post" else copy.deepcopy(id_model) if id_model is not None else \
            SASRec(split, dim, max_len=max_len, loss_type="bce")
        self.fusion, self.align_weight, self.tau, self.lm_lr = fusion, align_weight, tau, lm_lr
        self.align = symmetric_info_nce if align_loss == "symmetric" else in_batch_info_nce
        self.length_buckets = length_buckets
        self.stages = ("id", "content") if fusion == "post" and id_model is None else ("content",)
        self.register_buffer("z", torch.cat([torch.zeros(1, z.shape[1]), torch.from_numpy(z)]))  # row 0: padding
        self.dueg, token_norm = slice_copy(lm if lm is not None else default_lm(encoder), *layers)  # private, trainable
        H = self.dueg.hidden_size
        self.w_in = nn.Linear(z.shape[1], H, bias=False)
        nn.init.normal_(self.w_in.weight, std=token_norm / math.sqrt(H))  # |W_in z| ~ a token embedding's norm
        self.id_emb = item_table(self.n_items, H) if fusion == "early" else None
        # [User]: one learned input vector after the sequence; its state is the user (the paper's DUEG prompt)
        self.user_tok = nn.Parameter(torch.randn(H) * token_norm / math.sqrt(H)) if user_token else None
        self.dropout = nn.Dropout(dropout)
        self.w_u, self.w_v = nn.Linear(H, dim), nn.Linear(H, dim)
        self.stage = None
        self.set_stage(self.stages[0])

    # ------------------------------------------------------------------------------ stages
    def set_stage(self, stage: str):
        """"id": only the SASRec trains; "content": everything but the SASRec (frozen, in eval mode)."""
        if stage not in self.stages:
            raise ValueError(f"unknown stage {stage!r}; valid: {list(self.stages)}")
        for name, p in self.named_parameters():
            p.requires_grad = name.startswith("sasrec.") == (stage == "id")
        self.stage = stage
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        if self.sasrec is not None and self.stage == "content":
            self.sasrec.eval()  # a frozen teacher: no dropout
        return self

    def lr_factor(self, epoch: int) -> float:
        """The content stage's schedule: "warmup-cosine" (the paper's) warms up linearly over the first 5% of
        ``schedule_epochs`` epochs, then decays on a cosine to 0 at ``schedule_epochs`` (early stopping ends it)."""
        if self.schedule == "constant" or self.stage != "content":
            return 1.0
        warm = max(1, round(0.05 * self.schedule_epochs))
        if epoch <= warm:
            return epoch / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (epoch - warm) / (self.schedule_epochs - warm))))

    def param_groups(self, lr: float) -> list[dict]:
        lm = [p for n, p in self.named_parameters() if n.startswith("dueg.")]
        rest = [p for n, p in self.named_parameters() if not n.startswith("dueg.")]
        return [{"params": rest, "lr": lr}, {"params": lm, "lr": self.lm_lr}]

    # ------------------------------------------------------------------------------ representation
    def item_inputs(self, ids: torch.Tensor) -> torch.Tensor:
        """x_i for ids + 1 (0 = padding -> 0)."""
        x = self.w_in(self.z[ids])
        if self.id_emb is not None:
            x = x + self.id_emb(ids)
        return x * (ids > 0).unsqueeze(-1)

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """[B, L] ids + 1, left-padded -> content user embeddings u_t [B, L', dim] at every position (with
        ``user_token``: [B, 1, dim], the state at [User] after the sequence)."""
        seq = CausalEncoder.trim(seq)
        x, mask = self.item_inputs(seq), (seq > 0).long()
        if self.user_tok is not None:
            x = torch.cat([x, self.user_tok.expand(len(seq), 1, -1)], 1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
        h = self.dueg(self.dropout(x), mask)
        return self.w_u(h if self.user_tok is None else h[:, -1:])

    def item_vectors(self, ids: torch.Tensor | None = None) -> torch.Tensor:
        """v_i for ids + 1 (all items when None: [n_items, dim])."""
        ids = torch.arange(1, self.n_items + 1, device=self.z.device) if ids is None else ids
        return self.w_v(self.item_inputs(ids))

    def last_state(self, seq: torch.Tensor, chunk: int = 128) -> torch.Tensor:
        """u_T of each row of ``seq`` (ids + 1, left-padded), encoded in chunks of similar length: the padding
        a long row would add to every short one in its batch is not run through the LM layers."""
        order = torch.argsort((seq > 0).sum(1), stable=True)
        out = torch.empty(len(seq), self.w_u.out_features, device=seq.device)
        for s in range(0, len(seq), chunk):
            idx = order[s:s + chunk]
            out[idx] = self.encode(seq[idx])[:, -1]
        return out

    def user_embeddings(self, users: torch.Tensor, stage: str = "test") -> tuple[torch.Tensor, torch.Tensor | None]:
        """(content u^c, ID u^id or None) of ``users`` before their ``stage`` target."""
        seq = getattr(self, f"{stage}_seq")[users]
        return self.last_state(seq), (self.sasrec.encode(seq)[:, -1] if self.sasrec is not None else None)

    # ------------------------------------------------------------------------------ training
    def train_batches(self, batch_size: int, rng: np.random.Generator):
        if self.stage == "id":
            yield from self.sasrec.train_batches(batch_size, rng)
            return
        if not self.length_buckets:
            yield from super().train_batches(batch_size, rng)
            return
        # SASRec's windows for the whole epoch, then batches of similar length (32 batches sorted at a time)
        window, rows = next(training_windows(self.train_hist, len(self.train_hist), self.max_len, rng, "cpu"))
        length = (window > 0).sum(1).numpy()
        order, chunk, batches = rng.permutation(len(rows)), 32 * batch_size, []
        for s in range(0, len(order), chunk):
            part = order[s:s + chunk][np.argsort(-length[order[s:s + chunk]], kind="stable")]
            batches += [part[k:k + batch_size] for k in range(0, len(part), batch_size)]
        for b in rng.permutation(len(batches)):
            idx = torch.from_numpy(batches[b])
            yield window[idx].to(self.z.device), self.hist_users[rows[idx].to(self.hist_users.device)]

    def loss(self, batch) -> torch.Tensor:
        if self.stage == "id":
            return self.sasrec.loss(batch)
        seq, users = batch
        u = self.encode(seq[:, :-1])
        target = seq[:, -u.shape[1]:]
        valid = target > 0
        neg = self.negatives(users, target.shape)
        pos_logit = (u * self.item_vectors(target)).sum(-1)
        neg_logit = (u * self.item_vectors(neg)).sum(-1)
        loss = sampled_bce(pos_logit[valid], neg_logit[valid])
        if self.fusion == "post" and self.align_weight > 0:
            with torch.no_grad():
                u_id = self.sasrec.encode(seq[:, :-1])[:, -1]
            loss = loss + self.align_weight * self.align(u[:, -1], u_id, self.tau)
        return loss

    def score_all(self, users, stage):
        if self.stage == "id":
            return self.sasrec.score_all(users, stage)
        return self.last_state(getattr(self, f"{stage}_seq")[users]) @ self.item_vectors().T


def default_lm(encoder: str) -> str:
    """DUEG's layers come from the MIRM encoder when it is a decoder LM, else from SmolLM2."""
    from ..text.models import resolve

    return encoder if resolve(encoder).causal else "smollm2"
