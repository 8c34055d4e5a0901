"""The evidence store (llmrec_lite/evidence.py): one schema, writes that replace a row of the same identity and keep
the others, a command on every row, clear errors; and the repository's store as the notebooks read it."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from llmrec_lite import evidence


def _run(label, seed, ndcg, dataset="ml-100k"):
    return {"model": label.split(":")[0], "label": label, "dataset": dataset, "split": "loo", "seed": seed,
            "metrics": {"ndcg@10": ndcg}, "hyperparameters": {"lr": 1e-3}, "environment": {"threads": 2}}


def test_writes_replace_the_same_run_and_keep_the_others(tmp_path):
    store = tmp_path / "e.jsonl"
    evidence.write([evidence.as_run(_run("pad", 1, 0.1)), evidence.as_run(_run("pad", 2, 0.2))], store)
    evidence.write([evidence.table_row("bahe_cost", ["ml-100k", 20], {"speed-up": 5.0}, "python benchmarks/bahe_cost.py")],
                   store)
    evidence.write([evidence.as_run(_run("pad", 1, 0.3)), evidence.as_run(_run("pad", 1, 0.4, "amazon-pantry"))], store)
    runs = evidence.runs(store)
    assert sorted((r["dataset"], r["seed"], r["metrics"]["ndcg@10"]) for r in runs) == [
        ("amazon-pantry", 1, 0.4), ("ml-100k", 1, 0.3), ("ml-100k", 2, 0.2)]
    assert evidence.runs(store, dataset="ml-100k", seed=2)[0]["metrics"]["ndcg@10"] == 0.2
    assert evidence.frame("bahe_cost", store).to_dict("records") == [
        {"speed-up": 5.0, "command": "python benchmarks/bahe_cost.py"}]
    for line in store.read_text().splitlines():                 # one schema: every line has its table and command
        rec = json.loads(line)
        assert rec["table"] and rec["command"] and "date" in rec


def test_a_run_row_names_the_command_that_recomputes_it(tmp_path):
    r = evidence.as_run(_run("llmesr", 2, 0.1, "amazon-scientific"))
    assert r["command"] == ("python benchmarks/run.py --only llmesr --exact --datasets amazon-scientific --all-seeds "
                            "--seeds 2")


def test_replace_table_drops_the_old_rows_of_that_table_only(tmp_path):
    store = tmp_path / "e.jsonl"
    evidence.write([evidence.table_row("lm_cost", n, {"layers": n}, "cmd") for n in (2, 8)] +
                   [evidence.as_run(_run("pad", 1, 0.1))], store)
    evidence.write([evidence.table_row("lm_cost", 30, {"layers": 30}, "cmd")], store, replace_table="lm_cost")
    assert [r["row"]["layers"] for r in evidence.rows("lm_cost", store)] == [30] and len(evidence.runs(store)) == 1


def test_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="no evidence store at .*run `python benchmarks/run.py`"):
        evidence.read(tmp_path / "none.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"table": "runs"}\n{"no table": 1}\n')
    with pytest.raises(ValueError, match="bad.jsonl, line 2, is not an evidence record"):
        evidence.read(bad)
    good = tmp_path / "good.jsonl"
    evidence.write([evidence.as_run(_run("pad", 1, 0.1))], good)
    with pytest.raises(KeyError, match=r"no table 'molar_sweep'; tables: \['runs'\]"):
        evidence.rows("molar_sweep", good)


def test_the_repository_store_has_every_table_the_notebooks_read():
    tables = {r["table"] for r in evidence.read()}
    assert {"runs", "molar_sweep", "molar_validation", "bahe_cost", "cost_growth", "lm_cost", "reference"} <= tables
    assert {"01_probes", "01_probe_intervals", "02_ablation_gaps", "03_forgetting", "03_mmd_weight", "03_stage3",
            "03_concat"} <= tables                                    # what the default runs of 01-03 read
    runs = evidence.runs()
    idents = [evidence.identity(r) for r in runs]
    assert len(idents) == len(set(idents))                       # one record per (label, dataset, split, seed)
    assert all(r.get("hyperparameters") is not None and r["command"] for r in runs)


def test_compare_puts_a_live_run_beside_its_stored_record(tmp_path):
    store = tmp_path / "e.jsonl"
    evidence.write([evidence.as_run(_run("pad", 2020, 0.1000))], store)
    live = {"pad": _run("pad", 2020, 0.1004), "llmesr": _run("llmesr", 2020, 0.05)}
    t = evidence.compare(live, metrics=("ndcg@10",), store=store).set_index("run")
    assert t.loc["pad", "same"] and t.loc["pad", "diff"] == pytest.approx(0.0004)
    assert not t.loc["llmesr", "same"] and pd.isna(t.loc["llmesr", "stored"])       # nothing stored: not the same
    far = evidence.compare({"pad": _run("pad", 2020, 0.1100)}, metrics=("ndcg@10",), store=store)
    assert not far["same"].iloc[0] and far["command"].iloc[0].startswith("python benchmarks/run.py --only pad")


def test_a_notebook_table_round_trips_with_its_index_and_command(tmp_path):
    store = tmp_path / "e.jsonl"
    df = pd.DataFrame({"valid R@20": [0.30, 0.31], "note": ["a", "b"]}, index=pd.Index(["minilm", "random"], name="probe"))
    evidence.save_frame("01_probes", df, "python notebooks/execute.py --mode full 01_alpharec.ipynb", store=store)
    back = evidence.load_frame("01_probes", store)
    pd.testing.assert_frame_equal(back, df)
    assert back.attrs["command"].endswith("01_alpharec.ipynb")
    assert "recompute: python notebooks/execute.py --mode full 01_alpharec.ipynb" in evidence.source("01_probes", store)
    evidence.save_frame("01_probes", df.iloc[:1], "cmd", store=store)          # a new full run replaces the table
    assert len(evidence.load_frame("01_probes", store)) == 1
    multi = pd.DataFrame({"diff": [0.1, -0.2]}, index=pd.MultiIndex.from_tuples([("r@20", "all"), ("r@20", "tail")],
                                                                                names=["metric", "group"]))
    evidence.save_frame("gaps", multi, "cmd", store=store)
    pd.testing.assert_frame_equal(evidence.load_frame("gaps", store), multi)


def test_the_quickstart_headline_trained_live_equals_its_stored_record(ml100k):
    """What notebook 00's default run asserts, here in the suite: MF-BPR trained now on ml-100k (seed 2020, the
    registry's settings) is the evidence store's seed-2020 record, to BLAS order (``evidence.TOLERANCE``). A change to
    the model, trainer, split or evaluator that moves it fails here until the benchmark row is recomputed (its
    command is in the message)."""
    from llmrec_lite.data import random_split
    from llmrec_lite.experiment import train_and_test

    _, _, rec = train_and_test("mf", random_split(ml100k, seed=2020), seed=2020, progress=False, store=False)
    table = evidence.compare({"mf": rec}, metrics=("recall@20", "ndcg@10", "ndcg@20"))
    assert len(table) == 3 and table["same"].all(), table.to_string()
    assert (table["diff"].abs() <= evidence.TOLERANCE).all()


def test_ctr_predictions_round_trip_on_their_rows_only(tmp_path, synth):
    import numpy as np

    from llmrec_lite.data import ctr_view
    from llmrec_lite.metrics import paired_ctr_difference

    store = tmp_path / "evidence.jsonl"
    view = ctr_view(synth, max_history=6)
    t = view.arrays("test")
    prob = np.random.default_rng(0).random(len(t["label"]))
    per_row = {"user": t["user"], "item": t["item"], "label": t["label"], "prob": prob}
    evidence.write([evidence.table_row("preds", ["m", 1], evidence.ctr_predictions(per_row), "python make.py")], store)
    back = evidence.load_ctr_predictions("preds", ["m", 1], view, store)
    assert np.allclose(back["prob"], prob, atol=5e-6) and np.array_equal(back["user"], t["user"])
    same = paired_ctr_difference(back, per_row)   # usable as a run's test rows
    assert abs(same["diff"]) < 1e-4
    other = view.subsample(test=len(t["label"]) // 2, seed=1)  # other test rows: refused, naming the command
    with pytest.raises(ValueError, match="other test rows.*python make.py"):
        evidence.load_ctr_predictions("preds", ["m", 1], other, store)
    with pytest.raises(KeyError, match="no stored test predictions"):
        evidence.load_ctr_predictions("preds", ["m", 2], view, store)
