"""Item encoding sharded over 2 CPU processes (accelerate launch, torchrun underneath, gloo) writes the same table,
in catalogue order, into the same cache file as one process."""
import os
import subprocess
import sys

import numpy as np
import pytest

from llmrec_lite.data import load_dataset
from llmrec_lite.text import encode_items
from llmrec_lite.text.encode import embedding_cache_file


@pytest.mark.slow
def test_two_processes_write_the_one_process_table_to_its_cache_file(tmp_path, monkeypatch):
    texts = load_dataset("synthetic", verbose=False).item_texts
    cache = tmp_path / "cache"
    assert not embedding_cache_file(texts, cache_dir=cache).exists()
    env = os.environ | {"LLMREC_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "llmrec_lite", "encode", "--dataset", "synthetic",
           "--out", str(tmp_path / "two.npy")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"encoded {len(texts)} item texts of synthetic with minilm" in done.stdout and "2 processes" in done.stdout
    two = np.load(tmp_path / "two.npy")
    one = encode_items(texts, cache=False, progress=False)  # one process, no cache
    assert two.shape == one.shape == (len(texts), 384)
    np.testing.assert_allclose(two, one, atol=1e-5)  # same rows in the same order
    path = embedding_cache_file(texts, cache_dir=cache)
    assert path.is_file() and np.array_equal(np.load(path), two)
    from llmrec_lite.text import models

    monkeypatch.setattr(models, "load", lambda *a, **k: pytest.fail("loaded the LM: the sharded table was not a cache hit"))
    assert np.array_equal(encode_items(texts, cache_dir=cache, progress=False), two)
