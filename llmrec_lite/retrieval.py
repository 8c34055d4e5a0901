"""Similar-user retrieval from language-model user embeddings (LLM-ESR's self-distillation), cached."""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from .data.split import Split
from .io import load_npy, save_npy
from .text.cache import cache_path
from .text.prompts import user_prompt


def user_prompts(split: Split, max_items: int = 20) -> list[str]:
    """One prompt per user from the titles of their train items (most recent last)."""
    titles = split.dataset.items["title"].to_numpy()
    return [user_prompt(titles[h], max_items=max_items) for h in split.histories("train")]


def similar_users(z: np.ndarray, k: int = 100, batch_size: int = 2048) -> np.ndarray:
    """int64 [n, k]: for each row, the k rows of highest cosine similarity, most similar first,
    never the row itself. Blockwise, so 100k users fit in memory."""
    n = len(z)
    if not 0 < k < n:
        raise ValueError(f"k must be in [1, {n - 1}] for {n} users, got {k}")
    x = torch.nn.functional.normalize(torch.as_tensor(z, dtype=torch.float32), dim=-1)
    out = np.empty((n, k), np.int64)
    for s in range(0, n, batch_size):
        sim = x[s:s + batch_size] @ x.T
        sim[torch.arange(len(sim)), torch.arange(s, s + len(sim))] = -torch.inf  # never oneself
        out[s:s + batch_size] = torch.topk(sim, k, dim=1).indices.numpy()
    return out


def cached_similar_users(z: np.ndarray, k: int = 100, cache_dir=None) -> np.ndarray:
    """``similar_users`` computed once per (embeddings, k) and kept on disk (atomic .npy)."""
    key = hashlib.sha256(np.ascontiguousarray(z, dtype=np.float32).tobytes() + f"|k={k}".encode()).hexdigest()
    path = cache_path("retrieval", "similar-users", key, ".npy", cache_dir)
    if path.is_file():
        return load_npy(path)
    out = similar_users(z, k)
    save_npy(out, path)
    return out
