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


def cosine_knn(x: np.ndarray, k: int = 10, queries=None, batch_size: int = 2048) -> np.ndarray:
    """The one cosine kNN helper. int64 [len(queries), k]: for each query row of ``x`` (default: all rows), the
    k other rows of ``x`` with the highest cosine similarity, most similar first (ties: lower index first),
    never the query row itself. Blockwise, so 100k rows fit in memory."""
    n = len(x)
    if not 0 < k < n:
        raise ValueError(f"k must be in [1, {n - 1}] for {n} rows, got {k}")
    e = torch.nn.functional.normalize(torch.as_tensor(np.asarray(x), dtype=torch.float32), dim=-1)
    q = np.arange(n) if queries is None else np.asarray(queries, dtype=np.int64).reshape(-1)
    out = np.empty((len(q), k), np.int64)
    for s in range(0, len(q), batch_size):
        rows = torch.from_numpy(q[s:s + batch_size])
        sim = e[rows] @ e.T
        sim[torch.arange(len(rows)), rows] = -torch.inf  # never oneself
        out[s:s + batch_size] = torch.topk(sim, k, dim=1, sorted=True).indices.numpy()
    return out


def similar_users(z: np.ndarray, k: int = 100, batch_size: int = 2048) -> np.ndarray:
    """int64 [n, k]: for each user, the k users of most similar LM embedding (``cosine_knn``)."""
    return cosine_knn(z, k, batch_size=batch_size)


def cached_similar_users(z: np.ndarray, k: int = 100, cache_dir=None) -> np.ndarray:
    """``similar_users`` computed once per (embeddings, k) and kept on disk (atomic .npy)."""
    key = hashlib.sha256(np.ascontiguousarray(z, dtype=np.float32).tobytes() + f"|k={k}".encode()).hexdigest()
    path = cache_path("retrieval", "similar-users", key, ".npy", cache_dir)
    if path.is_file():
        return load_npy(path)
    out = similar_users(z, k)
    save_npy(out, path)
    return out
