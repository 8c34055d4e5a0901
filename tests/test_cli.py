import json

import pytest

from llmrec_lite.cli import main
from llmrec_lite.experiment import format_table, run


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
    rec = run("mf", "synthetic", epochs=2, progress=False)
    assert rec["epochs"] == 2 and rec["split"] == "random"
    assert "mf" in format_table([rec])


@pytest.mark.parametrize("args,expected", [
    (["run", "bert4rec"], "unknown model 'bert4rec'; valid: ['alpharec', 'alpharec-linear', 'id-text-concat', 'lightgcn', 'llmesr', 'mf', 'pad', 'pop', 'sasrec']"),
    (["run", "mf", "--dataset", "netflix"], "unknown dataset 'netflix'; valid:"),
    (["run", "mf", "--dataset", "synthetic", "--encoder", "minilm"], "apply to the models that read item text ['alpharec', 'alpharec-linear', 'llmesr', 'pad', 'id-text-concat'], not 'mf'"),
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
    assert hp["encoder"] == "random-24" and hp["encoder_kwargs"] == {"center": False}


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
