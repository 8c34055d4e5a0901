"""Language models for recommendation: prompts, cached embeddings, cached generation."""
from .encode import encode_items, encode_variants, pool
from .generate import generate
from .models import ModelNotFoundError, resolve, smollm2_dir
from .prompts import item_prompt, user_prompt

__all__ = ["ModelNotFoundError", "encode_items", "encode_like", "encode_variants", "generate", "item_embeddings", "item_prompt", "mean_cosine", "nearest", "pool", "resolve",
           "smollm2_dir", "unit_rows", "user_prompt"]


def unit_rows(x):
    """Rows scaled to unit L2 norm (float32; all-zero rows stay zero)."""
    import numpy as np

    x = np.asarray(x)
    return (x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)).astype(np.float32)


def item_embeddings(texts, encoder: str = "minilm", seed: int = 0, center: bool = False, **kwargs):
    """``encode_items`` plus what a probe needs.

    ``"random"`` (or ``"random-<dim>"``): seeded Gaussian vectors of MiniLM's width (384) or ``dim``,
    L2-normalised — same shape, no language (the control).
    ``center=True``: subtract the mean vector of the catalogue and re-normalise. Decoder LLM hidden
    states share one dominant direction (SmolLM2's item vectors have mean cosine ~0.9996), which leaves
    the item-specific part tiny after normalisation; centering is a fixed preprocessing that uses no
    interaction data.
    """
    import numpy as np

    if encoder == "random" or encoder.startswith("random-"):
        dim = int(encoder.split("-", 1)[1]) if "-" in encoder else 384
        x = unit_rows(np.random.default_rng(seed).standard_normal((len(texts), dim)).astype(np.float32))
    else:
        x = encode_items(texts, encoder=encoder, **kwargs)
    return unit_rows(x - x.mean(0, keepdims=True)) if center else x


def encode_like(texts, catalogue, encoder: str = "minilm", center: bool = True, **kwargs):
    """Encode new texts (a user's intention, a new item) into the same space as a catalogue encoded
    with ``item_embeddings(..., center=center)``: ``catalogue`` is the raw (uncentred) catalogue."""
    x = encode_items(list(texts), encoder=encoder, **kwargs)
    return unit_rows(x - catalogue.mean(0, keepdims=True)) if center else unit_rows(x)


def mean_cosine(x) -> float:
    """Average cosine similarity between all pairs of rows (incl. self) — 1.0 = all vectors point the
    same way (an anisotropic space), ~0 = spread out."""
    m = unit_rows(x).mean(0)
    return float(m @ m)


def nearest(embeddings, index: int, k: int = 5):
    """Indices of the k rows most cosine-similar to row ``index`` (itself excluded), most similar first."""
    from ..retrieval import cosine_knn

    return cosine_knn(embeddings, k, queries=[index])[0]
