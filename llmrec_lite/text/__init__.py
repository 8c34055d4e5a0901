"""Language models for recommendation: prompts, cached embeddings, cached generation."""
from .encode import encode_items, pool
from .generate import generate
from .models import ModelNotFoundError, resolve, smollm2_dir
from .prompts import item_prompt, user_prompt

__all__ = ["ModelNotFoundError", "encode_items", "generate", "item_prompt", "nearest", "pool", "resolve",
           "smollm2_dir", "user_prompt"]


def nearest(embeddings, index: int, k: int = 5):
    """Indices of the k rows most cosine-similar to row ``index`` (itself excluded)."""
    import numpy as np

    e = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True).clip(1e-12)
    sim = e @ e[index]
    sim[index] = -np.inf
    return np.argsort(-sim)[:k]
