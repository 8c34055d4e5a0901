"""Greedy generation with a causal LLM's chat template, batched and cached on disk.

Later notebooks use it for LLM-CF's chain-of-thought texts and Molar's item descriptions.
"""
from __future__ import annotations

import json

import torch
from tqdm.auto import tqdm

from ..io import save_json
from . import models
from .cache import cache_key, cache_path


def chat_inputs(tok, prompts, system: str | None) -> list[str]:
    out = []
    for p in prompts:
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": p}]
        if getattr(tok, "chat_template", None):
            out.append(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))
        else:  # a base model without a template: plain text
            out.append((system + "\n\n" if system else "") + p + "\n")
    return out


def generate(prompts, model: str = "smollm2", system: str | None = None, max_new_tokens: int = 64,
             batch_size: int = 8, device="auto", dtype: str | None = None, cache: bool = True,
             cache_dir=None, progress: bool = True, lm=None, identity: str | None = None,
             chat: bool = True) -> list[str]:
    """Greedy completions (the assistant's reply only) for each prompt, cached by
    (model, system prompt, max_new_tokens, exact prompts). ``lm``: a (tokenizer, model) pair to generate
    with instead of loading ``model`` (e.g. a LoRA fine-tuned one), named by ``identity`` in the cache key.
    ``chat=False``: the prompts are continued as plain text (what a model fine-tuned on raw prompt ->
    answer pairs, ``text.finetune``, expects), without the chat template."""
    prompts = [str(p) for p in prompts]
    spec, name, ident, dev, dtype = models.where(model, lm, identity, device, dtype, cache, "generating")
    if spec is not None and not spec.causal:
        raise ValueError(f"{model!r} is not a causal LLM; use 'smollm2' or a *ForCausalLM model")
    key = cache_key(model=ident, system=system, max_new_tokens=max_new_tokens,
                    dtype=dtype, decoding="greedy", prompts=prompts, **({} if chat else {"chat": False}))
    path = cache_path("generations", name, key, ".json", cache_dir)
    if cache and path.is_file():
        out = json.loads(path.read_text(encoding="utf-8"))["outputs"]
        if len(out) == len(prompts):
            return out
    tok, lm = models.load(spec, str(dev), dtype) if lm is None else lm
    tok.padding_side = "left"  # generation continues from the right end of every row
    texts = chat_inputs(tok, prompts, system) if chat else [(system + "\n\n" if system else "") + p for p in prompts]
    outputs = []
    with torch.inference_mode():
        for s in tqdm(range(0, len(texts), batch_size), desc=f"generate {name}", disable=not progress, leave=False):
            enc = tok(texts[s:s + batch_size], return_tensors="pt", padding=True, add_special_tokens=False).to(dev)
            gen = lm.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                              pad_token_id=tok.pad_token_id)
            new = gen[:, enc["input_ids"].shape[1]:]
            outputs += [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]
    if cache:
        save_json({"model": ident, "system": system, "max_new_tokens": max_new_tokens,
                   "prompts": prompts, "outputs": outputs}, path)
    return outputs
