"""Language models for recommendation: prompts, cached embeddings, cached generation."""
from .encode import encode_items, pool
from .generate import generate
from .models import ModelNotFoundError, resolve, smollm2_dir
from .prompts import item_prompt, user_prompt

__all__ = ["ModelNotFoundError", "encode_items", "generate", "item_embeddings", "item_prompt", "nearest", "pool", "resolve",
           "smollm2_dir", "user_prompt"]


def item_embeddings(texts, encoder: str = "minilm", seed: int = 0, **kwargs):
    """``encode_items`` plus the controls a probe needs: ``"random"`` (or ``"random-<dim>"``) gives
    seeded Gaussian vectors of MiniLM's width (384) or ``dim``, L2-normalised — same shape, no language."""
    import numpy as np

    if encoder == "random" or encoder.startswith("random-"):
        dim = int(encoder.split("-", 1)[1]) if "-" in encoder else 384
        x = np.random.default_rng(seed).standard_normal((len(texts), dim)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)
    return encode_items(texts, encoder=encoder, **kwargs)


def nearest(embeddings, index: int, k: int = 5):
    """Indices of the k rows most cosine-similar to row ``index`` (itself excluded)."""
    import numpy as np

    e = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True).clip(1e-12)
    sim = e @ e[index]
    sim[index] = -np.inf
    return np.argsort(-sim)[:k]
