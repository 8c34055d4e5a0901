"""Text -> vectors with a sentence encoder or a causal LLM, batched and cached on disk.

    encode_items(texts, encoder="minilm")                       # mean-pooled, L2-normalised
    encode_items(texts, encoder="smollm2", pooling="last", layer=15)
    encode_items(texts, encoder="Qwen/Qwen2.5-1.5B", device="cuda")  # any HF model on a GPU
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
from tqdm.auto import tqdm

from ..io import load_npy, save_npy
from . import models
from .cache import cache_key, cache_path

POOLINGS = ("mean", "last", "first", "mean_skip_first")


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """[B, T, d] token states + [B, T] attention mask -> [B, d]. Padding may be left or right.
    "mean_skip_first": the mean over every real token but the first, whose state in a decoder LM is an
    attention sink (in SmolLM2's middle layers ~10x the norm of the others, a few huge dimensions), so it
    would dominate a plain mean; a one-token text keeps its token."""
    T = mask.shape[1]
    pos = torch.arange(T, device=mask.device).expand_as(mask)
    first = torch.where(mask.bool(), pos, torch.full_like(pos, T)).min(1).values
    if pooling == "mean_skip_first":
        rest = mask.bool() & (pos != first.unsqueeze(1))
        mask = torch.where(rest.any(1, keepdim=True), rest, mask.bool())
        pooling = "mean"
    mask = mask.to(hidden.dtype)
    if pooling == "mean":
        return (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
    if pooling == "last":  # position of the last real token
        idx = torch.where(mask.bool(), pos, torch.full_like(pos, -1)).max(1).values
    elif pooling == "first":
        idx = first
    else:
        raise ValueError(f"unknown pooling {pooling!r}; valid: {POOLINGS}")
    return hidden[torch.arange(len(hidden)), idx]


def decoder_stack(model):
    """The llama-style decoder stack inside ``model`` (a causal LM, a PEFT wrapper of one: the module with
    ``layers``, ``embed_tokens`` and ``norm``), or None (e.g. a BERT encoder). Encoding calls it directly:
    a causal LM's output head (576 x 49152 for SmolLM2) would cost more than a few layers, for logits unused."""
    return next((m for m in model.modules() if isinstance(getattr(m, "layers", None), torch.nn.ModuleList)
                 and hasattr(m, "embed_tokens") and hasattr(m, "norm")), None)


@contextmanager
def only_layers(model, n: int | None):
    """Run only the first ``n`` decoder layers of a llama-style model (a PEFT wrapper included) inside the
    block: ``hidden_states[k]`` for k < n is unchanged (it is the input of layer k, before any final norm),
    and the layers above are skipped. ``None`` or a model without llama-style ``layers``: no change.
    Done through ``config.num_hidden_layers`` (the layer loop reads it), never by removing layers: transformers
    installs its hidden-state hooks on the layers it finds at the first call, and a shortened layer list would
    leave the model without hooks on the others for the rest of the session."""
    inner = decoder_stack(model)
    cfg = getattr(inner, "config", None)
    if n is None or inner is None or cfg is None or n >= getattr(cfg, "num_hidden_layers", 0):
        yield
        return
    full = cfg.num_hidden_layers
    cfg.num_hidden_layers = n
    try:
        yield
    finally:
        cfg.num_hidden_layers = full


def _cache_file(name, ident, variant, normalize, max_length, dtype, texts, cache_dir):
    return cache_path("embeddings", name, cache_key(model=ident, pooling=variant[0], layer=variant[1], normalize=normalize,
                                                    max_length=max_length, dtype=dtype, texts=texts), ".npy", cache_dir)


def embedding_cache_file(texts, encoder: str = "minilm", pooling: str = "mean", layer: int = -1, normalize: bool = True,
                         max_length: int = 128, device="auto", dtype: str | None = None, cache_dir=None):
    """The file ``encode_items`` caches these exact texts and settings in (it may not exist yet)."""
    _, name, ident, _, dtype = models.where(encoder, None, None, device, dtype)
    return _cache_file(name, ident, (pooling, int(layer)), normalize, max_length, dtype, [str(t) for t in texts], cache_dir)


def encode_items(texts, encoder: str = "minilm", pooling: str = "mean", layer: int = -1,
                 normalize: bool = True, batch_size: int = 32, max_length: int = 128,
                 device="auto", dtype: str | None = None, cache: bool = True, cache_dir=None,
                 progress: bool = True, lm=None, identity: str | None = None) -> np.ndarray:
    """Encode each text to one vector (float32 [len(texts), d]).

    encoder: "minilm", "smollm2", or a HF path/id. pooling: mean | last | first token | mean_skip_first (the
    mean without the first token, see ``pool``) of the hidden states of ``layer`` (-1 = last; 0 = the token embeddings; a middle layer of an LLM often encodes
    more general semantics). The result is cached under a key of (model, settings, exact texts).
    ``lm``: a (tokenizer, model) pair to encode with instead of loading ``encoder`` (e.g. a LoRA fine-tuned
    model from ``text.finetune``); ``identity`` names it in the cache key (required when caching).
    """
    return encode_variants(texts, encoder, [(pooling, layer)], normalize=normalize, batch_size=batch_size,
                           max_length=max_length, device=device, dtype=dtype, cache=cache,
                           cache_dir=cache_dir, progress=progress, lm=lm, identity=identity)[(pooling, layer)]


def encode_variants(texts, encoder: str = "minilm", variants=(("mean", -1),), normalize: bool = True,
                    batch_size: int = 32, max_length: int = 128, device="auto", dtype: str | None = None,
                    cache: bool = True, cache_dir=None, progress: bool = True, lm=None,
                    identity: str | None = None) -> dict:
    """Several (pooling, layer) views of the same texts from ONE forward pass:
    {(pooling, layer): float32 [len(texts), d]}. Each view is cached exactly as ``encode_items``
    caches it, so a later ``encode_items(..., pooling, layer)`` is a cache hit. When every layer asked for
    is a middle one (0 <= layer < last), the layers above it are not run (same vectors, less time)."""
    texts = [str(t) for t in texts]
    if not texts:
        raise ValueError("encode_items needs at least one text")
    variants = [(p, int(l)) for p, l in variants]
    for p, _ in variants:
        if p not in POOLINGS:
            raise ValueError(f"unknown pooling {p!r}; valid: {POOLINGS}")
    spec, name, ident, dev, dtype = models.where(encoder, lm, identity, device, dtype, cache, "encoding")
    paths = {v: _cache_file(name, ident, v, normalize, max_length, dtype, texts, cache_dir) for v in variants}
    result = {}
    for v, path in paths.items():
        if cache and path.is_file():
            arr = load_npy(path)
            if arr.shape[0] == len(texts):
                result[v] = arr
    todo = [v for v in variants if v not in result]
    if not todo:
        return result
    tok, model = models.load(spec, str(dev), dtype) if lm is None else lm
    tok.padding_side = "right"
    order = np.argsort([-len(t) for t in texts])  # similar lengths per batch: less padding
    out = {v: [None] * len(texts) for v in todo}
    top = max(l for _, l in todo)
    runner = decoder_stack(model) or model  # hidden states only: no output head
    with torch.inference_mode(), only_layers(model, top + 1 if min(l for _, l in todo) >= 0 else None):
        for s in tqdm(range(0, len(texts), batch_size), desc=f"encode {name}", disable=not progress, leave=False):
            idx = order[s:s + batch_size]
            enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt").to(dev)
            res = runner(**enc, output_hidden_states=True)
            n = len(res.hidden_states)
            for pooling, layer in todo:
                if not -n <= layer < n:
                    raise ValueError(f"layer {layer} out of range for {name}: it has {n} hidden states "
                                     f"(0 = token embeddings, {n - 1} = last layer)")
                v = pool(res.hidden_states[layer].float(), enc["attention_mask"], pooling)
                if normalize:
                    v = torch.nn.functional.normalize(v, dim=-1)
                for j, i in enumerate(idx):
                    out[(pooling, layer)][i] = v[j].cpu().numpy()
    for v in todo:
        result[v] = np.stack(out[v]).astype(np.float32)
        if cache:
            save_npy(result[v], paths[v])
    return result
