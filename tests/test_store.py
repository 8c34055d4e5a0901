"""The trained-model store (llmrec_lite/store.py): an unchanged run loads, a changed setting retrains, a corrupt file
is reported in one line and trained again, and a loaded model scores exactly as the trained one did."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from llmrec_lite import store
from llmrec_lite.data import leave_one_out, random_split
from llmrec_lite.experiment import run, train_and_test

FAST = dict(epochs=3, batch_size=64, lr=1e-2)


@pytest.fixture()
def tmp_store(tmp_path, monkeypatch):
    monkeypatch.setenv(store.STORE_ENV, str(tmp_path / "models"))
    monkeypatch.delenv(store.RETRAIN_ENV, raising=False)
    return tmp_path / "models"


def _files(folder):
    return sorted(p.name for p in folder.glob("*.safetensors")) if folder.is_dir() else []


def test_unchanged_run_loads_and_scores_the_same(synth, tmp_store, capsys):
    s = random_split(synth, seed=1)
    m1, res1, rec1 = train_and_test("mf", s, seed=1, progress=False, **FAST)
    assert "saved" in rec1["model_store"] and len(_files(tmp_store)) == 1
    m2, res2, rec2 = train_and_test("mf", s, seed=1, progress=False, **FAST)
    assert "loaded from the model store" in capsys.readouterr().out
    assert rec2["model_store"]["loaded"] == rec1["model_store"]["saved"]
    assert rec2["metrics"] == rec1["metrics"]                       # tested anew on the loaded weights: the same
    assert rec2["train_seconds"] == rec1["train_seconds"] and res2.history == res1.history
    assert rec2["environment"] == rec1["environment"]               # where it was trained, not where it was loaded
    for (k, a), (_, b) in zip(m1.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("change", [dict(lr=5e-3), dict(dim=32), dict(seed=2)])
def test_a_changed_setting_trains_again(synth, tmp_store, change):
    seed = change.pop("seed", 1)
    s = random_split(synth, seed=1)
    train_and_test("mf", s, seed=1, progress=False, **FAST)
    _, _, rec = train_and_test("mf", s, seed=seed, progress=False, **(FAST | change))
    assert "saved" in rec["model_store"] and len(_files(tmp_store)) == 2


def test_other_split_rows_train_again(synth, tmp_store):
    train_and_test("mf", random_split(synth, seed=1), seed=1, progress=False, **FAST)
    _, _, rec = train_and_test("mf", random_split(synth, seed=3), seed=1, progress=False, **FAST)
    assert "saved" in rec["model_store"]


def test_array_overrides_are_keyed_by_content(synth, tmp_store):
    s = leave_one_out(synth)
    z = np.random.default_rng(0).standard_normal((s.n_items, 8)).astype(np.float32)
    _, _, a = train_and_test("alpharec-linear", random_split(synth, seed=1), seed=1, progress=False, item_z=z, **FAST)
    _, _, b = train_and_test("alpharec-linear", random_split(synth, seed=1), seed=1, progress=False, item_z=z.copy(),
                             **FAST)
    z[0, 0] += 1.0
    _, _, c = train_and_test("alpharec-linear", random_split(synth, seed=1), seed=1, progress=False, item_z=z, **FAST)
    assert "saved" in a["model_store"] and "loaded" in b["model_store"] and "saved" in c["model_store"]


def test_corrupt_file_is_said_in_one_line_and_trained_again(synth, tmp_store, capsys):
    s = random_split(synth, seed=1)
    _, _, rec = train_and_test("mf", s, seed=1, progress=False, **FAST)
    path = tmp_store / rec["model_store"]["saved"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])   # a cut-off copy
    capsys.readouterr()
    _, _, again = train_and_test("mf", s, seed=1, progress=False, **FAST)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "is unreadable" in out and "training again" in out and "Traceback" not in out
    assert again["model_store"]["saved"] == path.name and again["metrics"] == rec["metrics"]
    _, _, third = train_and_test("mf", s, seed=1, progress=False, **FAST)   # the rewritten file is whole
    assert third["model_store"]["loaded"] == path.name


def test_retrain_trains_again_and_off_neither_loads_nor_saves(synth, tmp_store, monkeypatch):
    s = random_split(synth, seed=1)
    train_and_test("mf", s, seed=1, progress=False, **FAST)
    _, _, rec = train_and_test("mf", s, seed=1, progress=False, retrain=True, **FAST)
    assert "saved" in rec["model_store"]
    monkeypatch.setenv(store.RETRAIN_ENV, "1")
    _, _, rec = train_and_test("mf", s, seed=1, progress=False, **FAST)
    assert "saved" in rec["model_store"]
    monkeypatch.setenv(store.STORE_ENV, "off")
    monkeypatch.delenv(store.RETRAIN_ENV)
    _, _, rec = train_and_test("mf", s, seed=1, progress=False, **FAST)
    assert rec["model_store"] == "off"


@pytest.mark.parametrize("name,kw", [("lightgcn", {}), ("sasrec", {}), ("pad", {"encoder": "random-32", "dim": 16}),
                                     ("llmesr", {"encoder": "random", "dim": 16})])
def test_loaded_models_score_exactly_as_trained(synth, tmp_store, name, kw):
    """Multi-stage PAD too: the stage switches are replayed before the weights are loaded."""
    a = run(name, "synthetic", seed=1, progress=False, **kw, **FAST)
    b = run(name, "synthetic", seed=1, progress=False, **kw, **FAST)
    assert "saved" in a["model_store"] and "loaded" in b["model_store"]
    assert b["metrics"] == a["metrics"] and b["parameters"] == a["parameters"]


def test_a_code_change_changes_the_key(synth, monkeypatch):
    s = random_split(synth, seed=1)
    key, h = store.run_key("mf", s, 1, "cpu", {"lr": 1e-3})
    assert store.run_key("mf", s, 1, "cpu", {"lr": 1e-3})[1] == h
    monkeypatch.setattr(store, "_CODE_HASH", "edited")
    assert store.run_key("mf", s, 1, "cpu", {"lr": 1e-3})[1] != h


def test_objects_without_a_fingerprint_are_not_stored(synth, tmp_store):
    with pytest.raises(store.Unkeyable):
        store.fingerprint(object())


def test_tensors_training_left_as_built_are_not_saved_but_rebuilt(synth, tmp_store):
    """A frozen part (here PAD's text table, never trained) is left out of the file and rebuilt on load."""
    from safetensors import safe_open

    s = leave_one_out(synth)
    m1, _, a = train_and_test("pad", s, seed=1, progress=False, encoder="random-32", dim=16, **FAST)
    with safe_open(str(tmp_store / a["model_store"]["saved"]), framework="pt") as f:
        saved = set(f.keys())
    built = {k for k in m1.state_dict() if k not in saved}
    assert built and saved and not (built & saved)
    m2, _, b = train_and_test("pad", s, seed=1, progress=False, encoder="random-32", dim=16, **FAST)
    assert "loaded" in b["model_store"] and b["metrics"] == a["metrics"]
    for k, v in m1.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k]), k


def test_tensor_hashes_take_scalars_and_bfloat16():
    m = torch.nn.Module()
    m.register_buffer("step", torch.tensor(3))                      # a 0-d buffer (an LM's config counter, say)
    m.register_buffer("w", torch.ones(2, 2, dtype=torch.bfloat16))
    h = store.tensor_hashes(m)
    m.step += 1
    assert set(h) == {"step", "w"} and store.tensor_hashes(m)["step"] != h["step"]
    assert store.tensor_hashes(m)["w"] == h["w"]


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_multi_stage_runs_load_stage_by_stage_for_a_watcher(synth, tmp_store, capsys):
    """A run watched stage by stage (after_stage) loads each stored stage, calls the watcher on it, and ends with the
    same weights and metrics as training; the whole-run file is the last stage's."""
    s = leave_one_out(synth)
    kw = dict(FAST, item_z=np.random.default_rng(0).standard_normal((s.n_items, 8)).astype(np.float32))
    seen = []
    m1, _, rec1 = train_and_test("pad", s, seed=1, progress=False, after_stage=lambda st, m: seen.append(st), **kw)
    assert seen == ["pretrain", "align", "disentangle"] and "saved" in rec1["model_store"]
    assert len(_files(tmp_store)) == 4     # after stage 1 and 2, the whole run, and stage 1 as the SASRec-BCE run
    capsys.readouterr()
    seen.clear()
    m2, _, rec2 = train_and_test("pad", s, seed=1, progress=False, after_stage=lambda st, m: seen.append(st), **kw)
    out = capsys.readouterr().out
    assert seen == ["pretrain", "align", "disentangle"] and out.count("loaded from the model store") == 3
    assert rec2["metrics"] == rec1["metrics"] and rec2["stages"] == rec1["stages"]
    assert rec2["model_store"]["stages_loaded"] == ["pretrain", "align", "disentangle"]
    _same_weights(m1, m2)


def test_pad_stage_one_is_the_stored_sasrec_bce_run_both_ways(synth, tmp_store, capsys, monkeypatch):
    """PAD's stage 1 trains SASRec-BCE number for number, so a stored SASRec-BCE run serves as it (and a PAD run
    stores its stage 1 as that run); the PAD that follows equals one trained with the store off."""
    s = leave_one_out(synth)
    kw = dict(FAST, item_z=np.random.default_rng(0).standard_normal((s.n_items, 8)).astype(np.float32))
    sas, _, _ = train_and_test("sasrec", s, seed=1, progress=False, loss_type="bce", **FAST)
    capsys.readouterr()
    pad, _, rec = train_and_test("pad", s, seed=1, progress=False, **kw)
    assert "pad stage pretrain = sasrec" in capsys.readouterr().out and rec["stages"][0]["stage"] == "pretrain"
    assert rec["model_store"]["stages_loaded"] == ["pretrain"] and "saved" in rec["model_store"]
    monkeypatch.setenv(store.STORE_ENV, "off")
    ref, _, ref_rec = train_and_test("pad", s, seed=1, progress=False, **kw)
    _same_weights(pad, ref)
    assert rec["metrics"] == ref_rec["metrics"]
    # the other way round: a PAD run leaves its stage 1 where a later SASRec-BCE run finds it
    monkeypatch.setenv(store.STORE_ENV, str(tmp_store.parent / "other"))
    train_and_test("pad", s, seed=1, progress=False, **kw)
    capsys.readouterr()
    sas2, _, _ = train_and_test("sasrec", s, seed=1, progress=False, loss_type="bce", **FAST)
    assert "loaded from the model store" in capsys.readouterr().out
    _same_weights(sas2, sas)
    # a setting that changes stage 1 (the width) does not share it
    _, _, rec3 = train_and_test("pad", s, seed=1, progress=False, dim=16, **kw)
    assert "stages_loaded" not in rec3["model_store"] and "saved" in rec3["model_store"]


def test_the_language_models_dtype_is_part_of_the_key_and_of_the_record(synth, monkeypatch):
    """A run whose LM read bfloat16 vectors is another run than a float32 one (on a GPU the default is bfloat16):
    ``LLMREC_LM_DTYPE`` changes the key, and a run's environment names the dtype it read."""
    from llmrec_lite.experiment import _environment

    s = leave_one_out(synth)
    monkeypatch.delenv("LLMREC_LM_DTYPE", raising=False)
    h = store.run_key("mf", s, 1, "cpu", {})[1]
    assert _environment("cpu")["lm_dtype"] == "float32"
    monkeypatch.setenv("LLMREC_LM_DTYPE", "bfloat16")
    assert store.run_key("mf", s, 1, "cpu", {})[1] != h
    assert _environment("cpu")["lm_dtype"] == "bfloat16"
    monkeypatch.setenv("LLMREC_LM_DTYPE", "float32")
    assert store.run_key("mf", s, 1, "cpu", {})[1] == h


def test_a_bad_lm_dtype_is_one_line_naming_the_choices(monkeypatch):
    from llmrec_lite.text.models import default_dtype

    monkeypatch.setenv("LLMREC_LM_DTYPE", "fp8")
    with pytest.raises(ValueError, match=r"LLMREC_LM_DTYPE='fp8' is not a dtype; use one of float32, bfloat16, float16"):
        default_dtype(torch.device("cpu"))
