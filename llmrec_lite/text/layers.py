"""A decoder LLM's layers as modules that run on vectors, not only on tokens.

    lm = load_decoder("smollm2")                        # any HF causal LM id / path; llama-style layers
    low = DecoderSlice(lm, 0, 8)                         # frozen: layers 0..7 over token embeddings
    up = DecoderSlice(lm, 8, 30, trainable=True)         # layers 8..29 over any [B, T, hidden] vectors
    h = up(low(low.embed(input_ids), mask), mask)        # == the full model's last hidden state (pre-norm)

BAHE runs the lower layers over each behaviour's tokens once and the upper layers over the sequence of
behaviour vectors; Molar's user-embedding generator runs pre-trained layers over item vectors. A model that
trains a slice takes a private copy (``slice_copy``), so the shared cached LM stays as it was. A slice
gives each layer its rotary position embeddings (positions counted from the first real position, so
left padding is harmless) and a causal + padding mask, as the full model does.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from .models import default_dtype, load, resolve


def load_decoder(name: str = "smollm2", device="cpu", dtype: str | None = None, fresh: bool = True):
    """(tokenizer, causal LM) for ``name``. ``fresh=True`` returns a private copy (safe to fine-tune or slice
    with trainable layers); ``False`` the shared cached one (read-only use)."""
    from ..config import resolve_device

    spec = resolve(name)
    if not spec.causal:
        raise ValueError(f"{name!r} is not a decoder (causal) language model; decoder slices need one (e.g. smollm2)")
    device = resolve_device(device)
    tok, model = load(spec, str(device), dtype or default_dtype(device))
    return (tok, copy.deepcopy(model)) if fresh else (tok, model)


def _backbone(lm: nn.Module) -> nn.Module:
    inner = getattr(lm, "model", lm)
    if not all(hasattr(inner, a) for a in ("layers", "embed_tokens", "rotary_emb", "norm")):
        raise ValueError(f"{type(lm).__name__} has no llama-style decoder (layers, embed_tokens, rotary_emb, norm); "
                         f"decoder slices support llama / qwen / mistral-style models")
    return inner


def causal_padding_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, 1, T, T] additive mask: position t sees positions <= t that are real (``mask`` [B, T], 1 = real).
    A padding query row sees itself only (its output is ignored; no row is all -inf)."""
    t = mask.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=mask.device).tril()
    ok = causal[None] & mask.bool()[:, None, :]
    ok |= torch.eye(t, dtype=torch.bool, device=mask.device)[None]
    return torch.zeros(ok.shape, dtype=dtype, device=mask.device).masked_fill(~ok, torch.finfo(dtype).min)[:, None]


class DecoderSlice(nn.Module):
    """Decoder layers ``start``..``stop - 1`` of ``lm`` (a HF causal LM, or the (tokenizer, model) pair from
    ``load_decoder``), with the model's rotary embedding; ``final_norm=True`` applies the model's last RMSNorm
    (what the LM head reads). ``trainable=False`` freezes the slice's weights. The layers are shared with
    ``lm`` (no copy): slice a ``load_decoder(fresh=True)`` model when training."""

    def __init__(self, lm, start: int = 0, stop: int | None = None, trainable: bool = False,
                 final_norm: bool = False):
        super().__init__()
        lm = lm[1] if isinstance(lm, tuple) else lm
        inner = _backbone(lm)
        n = len(inner.layers)
        stop = n if stop is None else stop
        if not 0 <= start < stop <= n:
            raise ValueError(f"layers {start}..{stop} out of range: the model has {n} decoder layers")
        self.start, self.stop = start, stop
        self.layers = nn.ModuleList(inner.layers[start:stop])
        self.rotary = inner.rotary_emb
        self.norm = inner.norm if final_norm else None
        self.embed_tokens = inner.embed_tokens  # for token inputs (``embed``); not part of the slice's parameters
        self.hidden_size = lm.config.hidden_size
        for p in self.layers.parameters():
            p.requires_grad_(trainable)
        if self.norm is not None:
            for p in self.norm.parameters():
                p.requires_grad_(trainable)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings (the word-embedding layer the slice itself does not contain)."""
        return self.embed_tokens(input_ids)

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T, hidden] -> [B, T, hidden]; ``attention_mask`` [B, T] (1 = real position, 0 = padding)."""
        b, t, _ = inputs_embeds.shape
        if attention_mask is None:
            attention_mask = torch.ones(b, t, dtype=torch.long, device=inputs_embeds.device)
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        pos_emb = self.rotary(inputs_embeds, positions)
        mask4 = causal_padding_mask(attention_mask, inputs_embeds.dtype)
        h = inputs_embeds
        for layer in self.layers:
            out = layer(h, attention_mask=mask4, position_ids=positions, position_embeddings=pos_emb)
            h = out[0] if isinstance(out, tuple) else out
        return self.norm(h) if self.norm is not None else h


def slice_copy(lm, start: int, stop: int, trainable: bool = True, final_norm: bool = True, tokens: bool = False):
    """A private float32 copy of layers ``start``..``stop - 1`` of ``lm`` (a name, or a (tokenizer, model) pair),
    with the final norm if asked, and the word embeddings only when ``tokens=True`` (a slice that reads token
    ids through ``embed``); plus the mean norm of the LM's token embeddings (the input scale its layers were
    trained on). The LM itself is left as it was (its parameters' ``requires_grad`` flags included)."""
    model = lm[1] if isinstance(lm, tuple) else load_decoder(lm, fresh=False)[1]
    token_norm = float(model.get_input_embeddings().weight.detach().float().norm(dim=1).mean())
    flags = {p: p.requires_grad for p in model.parameters()}
    shared = DecoderSlice(model, start, stop, trainable=False, final_norm=final_norm)
    if not tokens:
        shared.embed_tokens = None  # the slice reads vectors, never tokens: no copy of the vocabulary
    own = copy.deepcopy(shared).float()
    for p, flag in flags.items():
        p.requires_grad_(flag)
    for p in own.parameters():
        p.requires_grad_(trainable)
    return own, token_norm
