import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The trained-model store is off in tests (a determinism test that loaded its second run could not fail);
# tests/test_store.py turns it on in a temporary folder.
os.environ["LLMREC_MODEL_STORE"] = "off"
ROOT = Path(__file__).resolve().parents[1]  # the repository
_shared = ROOT.parent / "shared" / "data"
if "LLMREC_DATA_DIR" not in os.environ and _shared.is_dir():
    os.environ["LLMREC_DATA_DIR"] = str(_shared)


def load_script(relpath: str, name: str):
    """A repository script that is not in the package (benchmarks/*.py, notebooks/execute.py), imported as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / relpath)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _real_data(name):
    from llmrec_lite.config import data_root

    if not (data_root() / name).is_dir():
        msg = f"{name} not available under {data_root()}: set LLMREC_DATA_DIR"
        if os.environ.get("LLMREC_REQUIRE_DATA", "0") not in ("", "0"):
            pytest.fail(msg + " (LLMREC_REQUIRE_DATA is set: CI never skips a test for missing data)")
        pytest.skip(msg)


def _dataset(name: str, folder: str | None = None):
    _real_data(folder or name)
    from llmrec_lite.data import load_dataset

    return load_dataset(name, verbose=False)


@pytest.fixture(scope="session")
def ml100k():
    return _dataset("ml-100k")


@pytest.fixture(scope="session")
def pantry():
    return _dataset("amazon-pantry", "amazon-prime-pantry")


@pytest.fixture(scope="session")
def ml1m():
    return _dataset("ml-1m")


@pytest.fixture(scope="session")
def scientific():
    return _dataset("amazon-scientific")


@pytest.fixture(scope="session")
def synth():
    from llmrec_lite.data import synthetic_dataset

    return synthetic_dataset()


def cot_pool(dataset, n: int = 80, dim: int = 16, seed: int = 0):
    """An LLM-CF CoT pool without an LLM: n sampled train rows of the dataset's CTR view, random unit CoT vectors."""
    import numpy as np

    from llmrec_lite.data import ctr_view
    from llmrec_lite.models.llmcf_offline import CoTPool, sample_rows

    rows = sample_rows(ctr_view(dataset, max_history=6), n, seed=seed)
    rows["prompt"], rows["cot"] = "prompt", "reasoning"
    z = np.random.default_rng(seed).standard_normal((n, dim))
    return CoTPool(rows, (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32))


TINY_WORDS = "the a movie film is good bad about space love war title answer yes no".split()


@lru_cache(maxsize=1)
def tiny_llama():
    """(tokenizer, model): a 4-layer, 32-wide random llama (SmolLM2's code path in seconds), shared."""
    return make_tiny_llama()


def make_tiny_llama(texts=None):
    """A fresh tiny llama (never called before: no hidden-state hooks installed yet); its word-level vocabulary
    is TINY_WORDS, or every word of ``texts`` (split as its whitespace / punctuation pre-tokenizer splits them)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = TINY_WORDS if texts is None else sorted({w for t in texts for w, _ in pre_tokenizers.Whitespace().pre_tokenize_str(t)})
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[EOS]"] + words)}
    t = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=t, pad_token="[PAD]", eos_token="[EOS]", unk_token="[UNK]")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2, pad_token_id=0, eos_token_id=2,
                      initializer_range=0.3)  # logits large enough that a LoRA on attention can fit the answers
    return tok, LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="session")
def tiny():
    return tiny_llama()
