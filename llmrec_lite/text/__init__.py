"""Language models for recommendation: prompts, cached embeddings, cached generation."""
from .encode import encode_items, pool
from .generate import generate
from .models import ModelNotFoundError, resolve, smollm2_dir
from .prompts import item_prompt, user_prompt

__all__ = ["ModelNotFoundError", "encode_items", "generate", "item_prompt", "pool", "resolve",
           "smollm2_dir", "user_prompt"]
