"""Content-addressed on-disk cache for LM outputs (embeddings as .npy, generations as .json).

The key is a SHA-256 of everything that determines the output: the model's identity, the settings
(pooling, layer, ...), and the exact texts. A changed text, model or setting gives a new key, so a
stale result is never reused. Files are written atomically and never pickled.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from ..config import cache_dir


def cache_key(**parts) -> str:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def cache_path(kind: str, model_name: str, key: str, suffix: str, root=None) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_name)[-40:]
    return cache_dir(root) / kind / f"{slug}-{key[:24]}{suffix}"
