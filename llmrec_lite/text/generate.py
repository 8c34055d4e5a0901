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


class NoRepeatInReply:
    """A logits processor: greedy decoding may not repeat any ``n``-gram of its own reply (the prompt's n-grams stay
    allowed, so names can be copied from it). A small LM decoding greedily otherwise loops on one line until the token
    cap; HF's ``no_repeat_ngram_size`` also bans the prompt's n-grams, which garbles the titles a CoT must quote."""

    def __init__(self, n: int, prompt_len: int):
        self.n, self.start = n, prompt_len

    def __call__(self, input_ids, scores):
        n, reply = self.n, input_ids[:, self.start:]
        if reply.shape[1] < n:
            return scores
        win = reply.unfold(1, n - 1, 1)  # [B, L-n+2, n-1]: every (n-1)-gram of the reply
        match = (win[:, :-1] == win[:, -1:]).all(-1)  # [B, L-n+1]: an earlier (n-1)-gram equal to the last one
        ban = torch.zeros(scores.shape, dtype=torch.int8, device=scores.device)
        ban.scatter_reduce_(1, reply[:, n - 1:], match.to(torch.int8), reduce="amax")  # the token that followed it
        return scores.masked_fill(ban.bool(), -float("inf"))


def _generate_batch(lm, tok, enc, max_new_tokens: int, no_repeat: int | None):
    from transformers import LogitsProcessorList

    kw = {}
    if no_repeat:
        kw["logits_processor"] = LogitsProcessorList([NoRepeatInReply(no_repeat, enc["input_ids"].shape[1])])
    gen = lm.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id, **kw)
    return [t.strip() for t in tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)]


def row_key(prompt: str, ident: str, system: str | None, max_new_tokens: int, dtype: str, chat: bool,
            no_repeat: int | None = None) -> str:
    """The cache key of one generation: the exact prompt with everything that decides its greedy output."""
    decoding = "greedy" + (f", no {no_repeat}-gram repeated in the reply" if no_repeat else "")
    return cache_key(model=ident, system=system, max_new_tokens=max_new_tokens, dtype=dtype, decoding=decoding,
                     chat=chat, prompt=prompt)


def read_rows(path) -> dict[str, str]:
    """{key: output} of a per-row generation file (JSONL, or gzip-compressed JSONL when it ends in .gz). A line a cut-off write left unfinished is skipped, and
    said in one line."""
    from pathlib import Path

    p, out, bad = Path(path), {}, 0
    if not p.is_file():
        return out
    if p.suffix == ".gz":
        import gzip

        text = gzip.decompress(p.read_bytes()).decode("utf-8")
    else:
        text = p.read_text(encoding="utf-8")
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            out[r["key"]] = r["output"]
        except (json.JSONDecodeError, KeyError, TypeError):
            bad += 1
    if bad:
        print(f"{p.name}: {bad} unfinished line(s) skipped (a cut-off write); those rows are generated again")
    return out


def generate_rows(prompts, path, model: str = "smollm2", system: str | None = None, max_new_tokens: int = 64,
                  batch_size: int = 8, device="auto", dtype: str | None = None, lm=None, identity: str | None = None,
                  chat: bool = True, seed: int = 0, limit: int | None = None, progress: bool = True,
                  extra: list[dict] | None = None, no_repeat: int | None = None) -> list[str | None]:
    """Greedy completions kept one JSONL line per prompt in ``path`` ({"key", "output"} + that prompt's ``extra``
    fields, e.g. its data row), each keyed by ``row_key`` (the exact prompt, the model or adapter identity, the
    system prompt, dtype and decoding settings). Rows already in the file are read back. The missing ones are
    generated in a seeded random order, batch by batch, and each batch is appended and flushed as it finishes:
    a run that is cut off keeps every finished row, the next run generates only the rest, and any prefix of the
    work is a random sample of the rows. ``no_repeat``: no n-gram of a reply repeated in it (``NoRepeatInReply``).
    ``limit``: generate at most this many new rows in this call. Returns the
    outputs in prompt order; rows not generated yet are None."""
    import os
    from pathlib import Path

    import numpy as np

    prompts = [str(p) for p in prompts]
    spec, name, ident, dev, dtype = models.where(model, lm, identity, device, dtype, True, "generating")
    if spec is not None and not spec.causal:
        raise ValueError(f"{model!r} is not a causal LLM; use 'smollm2' or a *ForCausalLM model")
    keys = [row_key(p, ident, system, max_new_tokens, dtype, chat, no_repeat) for p in prompts]
    done = read_rows(path)
    todo = [i for i in np.random.default_rng(seed).permutation(len(prompts)) if keys[i] not in done]
    seen, uniq = set(), []  # a prompt given twice is generated once
    for i in todo:
        if keys[i] not in seen:
            seen.add(keys[i])
            uniq.append(int(i))
    todo = uniq[:limit] if limit is not None else uniq
    if todo:
        tok, lm = models.load(spec, str(dev), dtype) if lm is None else lm
        tok.padding_side = "left"
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f, torch.inference_mode():
            for s in tqdm(range(0, len(todo), batch_size), desc=f"generate {name}", disable=not progress, leave=False):
                idx = todo[s:s + batch_size]
                batch = [prompts[i] for i in idx]
                texts = chat_inputs(tok, batch, system) if chat else [(system + "\n\n" if system else "") + p for p in batch]
                enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(dev)
                outs = _generate_batch(lm, tok, enc, max_new_tokens, no_repeat)
                for i, o in zip(idx, outs):
                    done[keys[i]] = o
                    f.write(json.dumps({"key": keys[i], "output": o, **(extra[i] if extra else {})}, ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
    return [done.get(k) for k in keys]
