"""Short supervised LoRA fine-tuning of a decoder LLM on CPU, with ``peft`` (the field's standard), cached.

    ft = finetune("smollm2", [("Title: Heat (1995). Genres: ...\\nDescription:", " A crime thriller ..."), ...])
    ft.model        # the PeftModel (base weights untouched, LoRA adapters trained), in eval mode
    ft.losses       # per-step training loss

Each example is (prompt, answer); the loss is the next-token cross-entropy on the answer tokens only (prompt
and padding are masked with -100), plus the end-of-sequence token so the model learns to stop. The adapter is
saved under the cache, keyed by the language model's identity, the examples and every setting: running the
same fine-tune again loads it instead of training (Molar's MIRM tasks, LLM-CF's RecGen).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import resolve_device, seed_everything
from .cache import cache_key, cache_path

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass
class FinetuneResult:
    model: object  # peft.PeftModel
    tokenizer: object
    losses: list[float] = field(default_factory=list)  # empty when loaded from the cache
    cached: bool = False
    path: str | None = None


def answer_labels(tok, prompts: list[str], answers: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids / attention_mask / labels for prompt + answer + EOS; labels are -100 on the
    prompt and the padding. Too-long rows are cut from the prompt's start (the answer is kept)."""
    rows, labels = [], []
    for p, a in zip(prompts, answers):
        pi = tok(p, add_special_tokens=False)["input_ids"]
        ai = tok(a, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        ai = ai[:max_length]
        pi = pi[max(0, len(pi) + len(ai) - max_length):]
        rows.append(pi + ai)
        labels.append([-100] * len(pi) + ai)
    t = max(len(r) for r in rows)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    ids = torch.full((len(rows), t), pad, dtype=torch.long)
    lab = torch.full((len(rows), t), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), t), dtype=torch.long)
    for i, (r, l) in enumerate(zip(rows, labels)):
        ids[i, :len(r)], lab[i, :len(l)], mask[i, :len(r)] = torch.tensor(r), torch.tensor(l), 1
    return {"input_ids": ids, "attention_mask": mask, "labels": lab}


def shipped_adapter(name: str):
    """``artefacts/lora/<name>``: an adapter committed with the repository (e.g. LLM-CF's RecGen, which wrote the
    committed CoT pool), found by the same cache key, so a fresh clone loads it instead of training it."""
    from ..config import REPO_ROOT

    return REPO_ROOT / "artefacts" / "lora" / name


def finetune(lm, examples: list[tuple[str, str]], epochs: int = 1, lr: float = 2e-4, batch_size: int = 4,
             rank: int = 8, lora_alpha: int = 16, lora_dropout: float = 0.05, target_modules=DEFAULT_TARGETS,
             max_length: int = 256, seed: int = 0, device="cpu", progress: bool = True, cache: bool = True,
             cache_dir=None, identity: str | None = None) -> FinetuneResult:
    """LoRA fine-tune ``lm`` (a language-model name such as "smollm2", or a (tokenizer, model) pair) on
    ``examples`` = [(prompt, answer), ...]. With a pair, pass ``identity`` (what the cache keys on) or
    ``cache=False``. Returns a ``FinetuneResult``; the base model given is not modified (a pair's model is
    copied)."""
    import copy

    from peft import LoraConfig, PeftModel, get_peft_model

    if not examples:
        raise ValueError("finetune needs at least one (prompt, answer) example")
    if any(not isinstance(e, (tuple, list)) or len(e) != 2 for e in examples):
        raise ValueError("examples must be (prompt, answer) pairs")
    device = resolve_device(device)
    if isinstance(lm, str):
        from .layers import load_decoder
        from .models import resolve

        identity = identity or resolve(lm).identity
        tok, base = load_decoder(lm, device, "float32", fresh=True)
    else:
        tok, base = lm[0], copy.deepcopy(lm[1]).to(device)
        if cache and identity is None:
            raise ValueError("pass identity=... (what the adapter cache keys on) or cache=False with a (tokenizer, model) pair")
    settings = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "rank": rank, "lora_alpha": lora_alpha,
                "lora_dropout": lora_dropout, "target_modules": list(target_modules), "max_length": max_length, "seed": seed}
    path = None
    if cache:
        key = cache_key(identity=identity, settings=settings, examples=[list(e) for e in examples])
        path = cache_path("lora", str(identity), key, "", cache_dir)
        for found in (path, shipped_adapter(path.name)):  # the cache, then the adapters the repository ships
            if (found / "adapter_config.json").is_file():
                model = PeftModel.from_pretrained(base, str(found)).to(device).eval()
                return FinetuneResult(model, tok, [], True, str(found))
    seed_everything(seed)
    config = LoraConfig(r=rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=list(target_modules),
                        task_type="CAUSAL_LM")
    model = get_peft_model(base, config)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    rng = np.random.default_rng(seed)
    steps = epochs * ((len(examples) + batch_size - 1) // batch_size)
    losses = []
    model.train()
    with tqdm(total=steps, desc="LoRA fine-tune", disable=not progress, leave=False) as bar:
        for _ in range(epochs):
            order = rng.permutation(len(examples))
            for s in range(0, len(order), batch_size):
                batch = [examples[i] for i in order[s:s + batch_size]]
                enc = answer_labels(tok, [p for p, _ in batch], [a for _, a in batch], max_length)
                loss = model(**{k: v.to(device) for k, v in enc.items()}).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(loss.item())
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    if cache:
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(str(tmp))
        (tmp / "train_log.json").write_text(json.dumps({"settings": settings, "identity": identity, "losses": losses}))
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)  # atomic: a cut-off run leaves no half-written adapter
    return FinetuneResult(model, tok, losses, False, str(path) if path else None)
