"""The committed CoT pool's pieces: the in-reply n-gram ban (by hand), gzip reading, a location-free RecGen
identity, the shipped-adapter lookup, the store's lock, and committed_pool matching rows by their keys."""
import gzip
import json
import multiprocessing as mp

import numpy as np
import pytest
import torch

from llmrec_lite import evidence
from llmrec_lite.data import ctr_view
from llmrec_lite.models import llmcf_offline as off
from llmrec_lite.text import finetune as ft
from llmrec_lite.text.generate import NoRepeatInReply, read_rows, row_key


def test_no_repeat_in_reply_bans_only_the_token_that_would_repeat_a_reply_ngram():
    # prompt [5, 6, 9] (3 tokens), reply [5, 6, 7, 5, 6]: the reply's last 2-gram (5, 6) was followed by 7 in the
    # reply, so 7 is banned for a 3-gram ban; 9 followed (5, 6) in the prompt only and stays allowed
    ids = torch.tensor([[5, 6, 9, 5, 6, 7, 5, 6],
                        [1, 2, 3, 4, 4, 4, 4, 4]])  # row 2: reply [4, 4, 4, 4, 4]: (4, 4) was followed by 4
    out = NoRepeatInReply(3, prompt_len=3)(ids, torch.zeros(2, 10))
    assert torch.isinf(out[0]).nonzero().flatten().tolist() == [7]
    assert torch.isinf(out[1]).nonzero().flatten().tolist() == [4]
    short = NoRepeatInReply(3, prompt_len=7)(ids, torch.zeros(2, 10))  # a 1-token reply: nothing to repeat
    assert not torch.isinf(short).any()


def test_read_rows_reads_gzip_and_row_keys_name_the_ban(tmp_path):
    lines = [json.dumps({"key": "a", "output": "x"}), json.dumps({"key": "b", "output": "y"})]
    (tmp_path / "p.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    assert read_rows(tmp_path / "p.jsonl.gz") == {"a": "x", "b": "y"}
    k = lambda nr: row_key("p", "m", "s", 8, "float32", True, nr)
    assert k(None) != k(4) != k(3)


class FakeResult:
    def __init__(self, path):
        self.path = path


def test_recgen_identity_is_the_adapter_folder_name_wherever_it_lies(tmp_path):
    a = off.recgen_identity(FakeResult(str(tmp_path / "x" / "lora" / "smol-abc123")))
    b = off.recgen_identity(FakeResult("/elsewhere/clone/artefacts/lora/smol-abc123"))
    assert a == b == "recgen:smol-abc123"
    with pytest.raises(ValueError, match="cache=False"):
        off.recgen_identity(FakeResult(None))


def test_finetune_loads_an_adapter_the_repository_ships_instead_of_training(tiny, tmp_path, monkeypatch):
    ex = [("movie one is good", " yes"), ("movie two is good", " no")]
    first = ft.finetune(tiny, ex, identity="tiny", cache_dir=tmp_path / "a", progress=False, max_length=16)
    assert not first.cached and first.losses
    from pathlib import Path

    shipped = tmp_path / "artefacts" / "lora"
    shipped.mkdir(parents=True)
    Path(first.path).rename(shipped / Path(first.path).name)  # the cache is empty now; the repository has it
    monkeypatch.setattr(ft, "shipped_adapter", lambda name: shipped / name)
    again = ft.finetune(tiny, ex, identity="tiny", cache_dir=tmp_path / "a", progress=False, max_length=16)
    assert again.cached and again.path == str(shipped / Path(first.path).name)


def _write_many(store, who, n):
    for i in range(n):
        evidence.write([evidence.table_row("t", f"{who}-{i}", {"v": i}, "cmd")], store)


def test_two_writers_at_once_keep_every_row(tmp_path):
    store = tmp_path / "e.jsonl"
    ps = [mp.get_context("fork").Process(target=_write_many, args=(store, w, 40)) for w in ("a", "b")]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    assert len(evidence.rows("t", store)) == 80


def test_committed_pool_keeps_the_rows_whose_keys_match_todays_prompts(synth, tmp_path, monkeypatch):
    view = ctr_view(synth, max_history=6)
    rows = off.sample_rows(view, 12, seed=0)
    names = off.item_names(view.dataset)
    meta = {"dataset": synth.name, "n": 12, "seed": 0, "identity": "recgen:x", "max_new_tokens": 8,
            "dtype": "float32", "no_repeat": 4}
    lines = []
    for k, (h, hl, i, y) in enumerate(zip(rows["history"], rows["history_label"], rows["item"], rows["label"])):
        if k % 3 == 2:
            continue  # not generated yet
        prompt = off.cot_prompt(names, h, hl, i, y) + (" (an older prompt)" if k == 0 else "")
        key = row_key(prompt, "recgen:x", off.SYSTEM, 8, "float32", True, 4)
        lines.append(json.dumps({"key": key, "output": f"cot {k}"}))
    monkeypatch.setattr(off, "ARTEFACTS", tmp_path)
    (tmp_path / off.POOL_META).write_text(json.dumps(meta))
    (tmp_path / off.POOL_FILE).write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    monkeypatch.setattr("llmrec_lite.text.encode_items", lambda texts, *a, **k: np.ones((len(texts), 4)))
    pool = off.committed_pool(view, progress=False)
    assert list(pool.rows["cot"]) == [f"cot {k}" for k in (1, 3, 4, 6, 7, 9, 10)]  # row 0's prompt is stale
    assert pool.cot_z.shape == (7, 4)
    meta["dataset"] = "other"
    (tmp_path / off.POOL_META).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="not"):
        off.committed_pool(view, progress=False)


def test_committed_pool_missing_names_the_command(synth, tmp_path, monkeypatch):
    monkeypatch.setattr(off, "ARTEFACTS", tmp_path)
    with pytest.raises(FileNotFoundError, match="cot_pool.py"):
        off.committed_pool(ctr_view(synth, max_history=6), progress=False)
