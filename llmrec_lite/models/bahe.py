"""BAHE (Geng et al., "Breaking the Length Barrier: LLM-Enhanced CTR Prediction in Long Textual User Behaviors",
SIGIR 2024, Ant Group; no public code: the paper is the reference), with SmolLM2 on a CPU.

A decoder LM of L layers is cut at layer k: LLM_low = layers 0..k-1 (pre-trained, frozen), LLM_high = layers
k..k+n_high-1 (pre-trained, trainable at ``lm_lr``), then the LM's final norm. A behaviour a is an item's text
(``Dataset.item_texts``: title, year, genres), cut at ``tokens`` = K tokens.

(1) Atomic behaviour encoding, offline, once per distinct behaviour (the behaviour table, cached on disk by
    ``text.encode_items``, keyed by the model, k, K, the pooling and the exact texts):
        E[a] = MeanPool_t( LLM_low(tok(a)) )                                      [H]
    the paper's mean pooling (``pooling="mean"``, the default). After layer 3 of SmolLM2 the first token's
    state is an attention sink (mean norm 757 vs 90 for the other tokens, notebook 05 section 4), so this mean
    is partly one vector shared by every behaviour; ``pooling="mean_skip_first"`` leaves that token out.
    Ablation on VALIDATION (ml-100k CTR view, M = 20, 1600 rows, 2 epochs, seed 2020, notebook 05, 2026-12-02),
    valid AUC per epoch: with the sink input S of (2), which BAHE reads by default, the plain mean wins (0.715 /
    0.723 vs 0.664 / 0.721 without the first token); without S the order flips (0.589 / 0.598 vs 0.616 / 0.633).
    Test agrees (plain − skipped: +0.0177 [+0.0042, +0.0308] with S, −0.0385 [−0.0688, −0.0086] without), so
    the default is the paper's.
(2) Behaviour aggregation: user u's behaviour sequence s_n = (a_n1 .. a_nM), the table's rows, through the
    upper layers (causal, rotary positions; the state at the last behaviour sees them all):
        Q_u^n = LastState( LLM_high(E[a_n1] .. E[a_nM]) )
    Deviation (named, ``sink=True``; the paper has no such input): the upper layers were pre-trained on
    sequences whose position 0 is an attention sink (a state ~8x the norm of the others after layer 3), which
    token level's sequences keep and a sequence of pooled vectors lacks. So BAHE puts
        S = mean_a LLM_low(tok(a))[first token]
    before the behaviours: Q_u^n = LastState( LLM_high(S, E[a_n1] .. E[a_nM]) ); one fixed vector, no behaviour's
    content, never the readout. Ablation on VALIDATION (same setting as the pooling's): valid AUC per epoch
    0.715 / 0.723 with S vs 0.589 / 0.598 without (token level: 0.710 / 0.704); ``sink=False`` is the paper's.
(3) Feature parallelism: the N sequences of a user (``sequences="label"``: the items rated >= the threshold and
    the others, N = 2; "all": one sequence) are separate rows of one batch, never attending to each other;
    an empty sequence gives Q = 0.
(4) CTR head over the user and the target item (its row of the same table):
        y = sigmoid( MLP([W_u Q_u^1; ..; W_u Q_u^N; W_t LN(E[target])]) ),  L = BCE(y, label)

Token-level baseline (``encoding="token"``, what BAHE replaces): the same frozen LLM_low, trainable LLM_high and
head, with the same initial weights for the same seed, but the N sequences are the concatenated behaviour
tokens tok(a_n1) + .. + tok(a_nM) (each cut at K), run through LLM_low and LLM_high at every step:
        Q_u^n = LastState( LLM_high(LLM_low(tok(a_n1) ++ .. ++ tok(a_nM))) )
The target item's vector is a row of a lower-layer table in both: BAHE's own table (``pooling``); for token level
a table pooled by ``target_pooling`` (default the paper's plain mean; its own validation chooses, notebook 05), so
that BAHE's pooling choice never changes the baseline's inputs (``pooling`` is not read by token level). The one
difference is where the behaviours are encoded: once per behaviour (BAHE), or inside every sequence that holds them (token level). Cost per
sequence: BAHE O(L_high M^2 H + L_high M H^2) online; token level O((L_low + L_high)((MK)^2 H + MK H^2)). Both
read only real positions: a batch's sequences are compacted (padding removed) and, token level, run in four
buckets of similar length, so a short sequence does not pay for the batch's longest (half the time at M = 20).

Named, besides the sink input S (2) and the pooling (1):
- Depth. SmolLM2 has 30 layers; the defaults here (notebook 05, ``benchmarks/bahe_seeds.py``) use layers 0-3 as
  LLM_low and 4-5 as LLM_high, and layers 6-29 are dropped: the user state is read after layer 5 and the final
  norm, not after the whole LM. A CPU budget, not a choice the paper makes.
- The target item never passes through the upper layers: its vector is its row of the lower-layer table, projected
  by W_t (both encodings alike).
- Labels: ``data.ctr_view`` makes every rating a row, label 1 for rating >= 4. The negatives are movies the user
  rated low, not items shown and not clicked as in the paper's logs.
- Order of choices: the pooling and S were chosen on validation, but after test numbers of the same rows had been
  seen (notebook 05, first pass); ``benchmarks/bahe_seeds.py`` reports the paper's form (``sink=False``) and ours
  over three model seeds.

``item_z``: a behaviour table to use instead (rows = items, width = the LM's hidden size). ``atomic="random"``
(the no-LLM control): the table replaced by seeded Gaussian vectors with the LM table's
per-dimension mean and spread, so the upper layers get inputs at the scale they expect but no lower-layer
knowledge. Choices the paper leaves open, set here: the split k, n_high, K, the last-state readout, the
64-d projections and the 200-80 ReLU head (the paper's default CTR model is a DNN). Deviations for a CPU:
SmolLM2-135M instead of the paper's LLM, a few layers, MovieLens titles as the textual behaviours.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .base import CTRRecommender, text_features

ENCODINGS = ("atomic", "token")
SEQUENCES = ("label", "all")
ATOMIC = ("lm", "random")
POOLINGS = ("mean", "mean_skip_first")


def behaviour_sequences(hist: torch.Tensor, hist_label: torch.Tensor, sequences: str) -> torch.Tensor:
    """[B, M] behaviours (ids + 1, 0 = padding) and their labels -> [N * B, M]: sequence n of row b is row
    n * B + b ("label": n = 0 the liked behaviours (label 1), n = 1 the others; "all": N = 1)."""
    if sequences == "all":
        return hist
    return torch.cat([hist * (hist_label == 1), hist * (hist_label == 0)])


def compact(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's real entries to the front in order ([R, T] -> [R, T'], T' = the longest row, >= 1):
    the layers pay for no padding between or before them."""
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
    length = max(int(mask.sum(1).max()), 1)
    return values.gather(1, order)[:, :length], mask.gather(1, order)[:, :length]


class BAHE(CTRRecommender):
    def __init__(self, split, encoder: str = "smollm2", encoding: str = "atomic", split_layer: int = 4,
                 upper_layers: int = 2, tokens: int = 16, sequences: str = "label", atomic: str = "lm",
                 dim: int = 64, hidden: tuple = (200, 80), dropout: float = 0.1, lm_lr: float = 1e-4,
                 lm=None, identity: str | None = None, atomic_seed: int = 0, item_z: np.ndarray | None = None,
                 pooling: str = "mean", sink: bool = True, target_pooling: str = "mean"):
        super().__init__(split)
        for name, value, valid in (("encoding", encoding, ENCODINGS), ("sequences", sequences, SEQUENCES),
                                   ("atomic", atomic, ATOMIC), ("pooling", pooling, POOLINGS),
                                   ("target_pooling", target_pooling, POOLINGS)):
            if value not in valid:
                raise ValueError(f"unknown {name} {value!r}; valid: {list(valid)}")
        if atomic == "random" and encoding == "token":
            raise ValueError("atomic='random' replaces the behaviour table, which only encoding='atomic' reads")
        if item_z is not None and encoding == "token":
            raise ValueError("item_z (a given behaviour table) is for encoding='atomic'; the token-level model encodes "
                             "the behaviours itself")
        given = None if item_z is None else text_features(split, item_z=item_z)  # row count checked first
        from ..text.layers import load_decoder, slice_copy

        pair = lm if lm is not None else load_decoder(encoder, fresh=False)
        n_layers = pair[1].config.num_hidden_layers
        if not 1 <= split_layer < split_layer + upper_layers <= n_layers:
            raise ValueError(f"split_layer={split_layer}, upper_layers={upper_layers}: need 1 <= split_layer and "
                             f"split_layer + upper_layers <= {n_layers} (the LM's layers)")
        self.encoding, self.sequences, self.lm_lr = encoding, sequences, lm_lr
        self.n_seq = 2 if sequences == "label" else 1
        self.eval_batch_size = 32 if encoding == "token" else 512  # token level: every row runs all the layers
        self.length_buckets = 4 if encoding == "token" else 1  # token level: 2x faster at M = 20; BAHE: no gain
        texts = split.dataset.item_texts
        # BAHE reads its behaviours and its target from one table (``pooling``); token level reads only its target
        # from a table, pooled by its own ``target_pooling``: BAHE's pooling choice never moves the baseline
        own = pooling if encoding == "atomic" else target_pooling
        want = ([] if given is not None else [own]) + (["first"] if sink and encoding == "atomic" else [])
        tables = self.behaviour_tables(texts, encoder, lm, identity, split_layer, tokens, want) if want else {}
        table = tables[own] if given is None else given
        if table.shape[1] != pair[1].config.hidden_size:
            raise ValueError(f"item_z has {table.shape[1]} columns; the upper layers read {pair[1].config.hidden_size} "
                             f"(the LM's hidden size at layer {split_layer})")
        if atomic == "random":
            g = np.random.default_rng(atomic_seed)
            table = (g.standard_normal(table.shape) * table.std(0) + table.mean(0)).astype(np.float32)
        H = table.shape[1]
        self.register_buffer("atoms", torch.cat([torch.zeros(1, H), torch.from_numpy(table)]))  # row 0: padding
        self.register_buffer("sink", None)  # BAHE only: S, the lower layers' mean first-token state (see (2))
        if "first" in tables:
            self.sink = torch.from_numpy(tables["first"].mean(0)).float()
        # every trainable part is built in the same order for both encodings: same seed, same initial weights
        self.upper, _ = slice_copy(pair, split_layer, split_layer + upper_layers, trainable=True, final_norm=True)
        self.w_u = nn.Linear(H, dim)
        self.w_t = nn.Sequential(nn.LayerNorm(H), nn.Linear(H, dim))
        sizes = [(self.n_seq + 1) * dim, *hidden]
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Dropout(dropout), nn.Linear(a, b), nn.ReLU()]
        self.head = nn.Sequential(*layers, nn.Linear(sizes[-1], 1))
        self.lower = None
        if encoding == "token":
            self.lower, _ = slice_copy(pair, 0, split_layer, trainable=False, final_norm=False, tokens=True)
            enc = pair[0]([str(t) for t in texts], truncation=True, max_length=tokens, padding="max_length",
                          return_tensors="pt")
            pad = torch.zeros(1, enc["input_ids"].shape[1], dtype=torch.long)
            self.register_buffer("tok_ids", torch.cat([pad, enc["input_ids"]]))  # row 0: padding
            self.register_buffer("tok_mask", torch.cat([pad, enc["attention_mask"]]).bool())

    @staticmethod
    def behaviour_table(texts, encoder: str, lm, identity: str | None, split_layer: int, tokens: int,
                        pooling: str = "mean") -> np.ndarray:
        """E [n_items, H]: the mean-pooled output of layers 0..k-1 over each behaviour's first ``tokens`` tokens
        (its first token skipped with ``pooling="mean_skip_first"``; ``encode_items`` at hidden state k, not
        normalised), cached on disk; a given (tokenizer, model) ``lm`` is cached under ``identity`` (not at all
        without one)."""
        return BAHE.behaviour_tables(texts, encoder, lm, identity, split_layer, tokens, [pooling])[pooling]

    @staticmethod
    def behaviour_tables(texts, encoder: str, lm, identity: str | None, split_layer: int, tokens: int,
                         poolings) -> dict:
        """{pooling: table} for several poolings of the same lower-layer states, from ONE pass over the texts
        (``text.encode_variants``; each table cached as ``behaviour_table`` caches it). "first" gives each
        behaviour's first-token state, whose mean is S."""
        from ..text import encode_variants

        kw = dict(variants=[(p, split_layer) for p in poolings], normalize=False, max_length=tokens, progress=False)
        got = (encode_variants(texts, encoder, **kw) if lm is None
               else encode_variants(texts, lm=lm, identity=identity, cache=identity is not None, **kw))
        return {p: got[(p, split_layer)] for p in poolings}

    def param_groups(self, lr: float) -> list[dict]:
        lm = [p for n, p in self.named_parameters() if n.startswith("upper.") and p.requires_grad]
        rest = [p for n, p in self.named_parameters() if not n.startswith(("upper.", "lower.")) and p.requires_grad]
        return [{"params": rest, "lr": lr}, {"params": lm, "lr": self.lm_lr}]

    def sequence_states(self, ids: torch.Tensor) -> torch.Tensor:
        """[R, M] behaviour sequences (ids + 1, 0 = padding) -> Q [R, H]: the upper layers' state at the last
        behaviour (0 for an empty sequence). The rows run in ``length_buckets`` groups of similar length, each
        cut to its own longest row, so short sequences do not pay for the batch's longest (the results are
        the same as one padded batch)."""
        if self.encoding == "atomic":
            values, mask = ids, ids > 0
        else:
            values = self.tok_ids[ids].flatten(1)  # [R, M * K]
            mask = (self.tok_mask[ids] & (ids > 0).unsqueeze(-1)).flatten(1)
        order = torch.argsort(mask.sum(1), stable=True)
        states = []
        for rows in order.tensor_split(min(self.length_buckets, len(order))):
            v, m = compact(values[rows], mask[rows])
            real = m.sum(1)  # behaviours (token level: tokens) in each row, before any S
            if self.encoding == "atomic":
                x = self.atoms[v]
                if self.sink is not None:  # S at position 0, before the behaviours; it is never the readout
                    x = torch.cat([self.sink.expand(len(x), 1, -1), x], 1)
                    m = torch.cat([torch.ones_like(m[:, :1]), m], 1)
            else:
                with torch.no_grad():
                    x = self.lower(self.lower.embed(v), m.long())
            h = self.upper(x, m.long())
            last = h[torch.arange(len(h), device=h.device), (m.sum(1) - 1).clamp(min=0)]
            states.append(last * (real > 0).unsqueeze(-1).to(last.dtype))
        return torch.cat(states)[torch.argsort(order)]

    def user_vector(self, batch: dict) -> torch.Tensor:
        """[B, N * dim]: the N sequences' states, run as N * B independent rows of one batch."""
        q = self.w_u(self.sequence_states(behaviour_sequences(batch["hist"], batch["hist_label"], self.sequences)))
        return torch.cat(q.chunk(self.n_seq), dim=-1)

    def predict(self, batch: dict) -> torch.Tensor:
        target = self.w_t(self.atoms[batch["item"] + 1])
        return self.head(torch.cat([self.user_vector(batch), target], -1)).squeeze(-1)

