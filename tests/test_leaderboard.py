"""The leaderboard reads the evidence store's runs: one row per (label, dataset, split), mean ± std over seeds,
a run written twice counted once (the later write replaces it), stale runs marked, clear errors."""
import json
import math

import pytest

from conftest import load_script
from llmrec_lite.cli import main
from llmrec_lite.leaderboard import PAPERS, leaderboard, load_records, missing_papers, to_json, to_markdown


def rec(model, seed, ndcg, dataset="ml-100k", split="loo", **extra):
    groups = {g: {"ndcg@10": ndcg / 2, "recall@20": ndcg} for g in ("head_items", "tail_items", "tail_users")}
    return {"model": model, "dataset": dataset, "split": split, "seed": seed, "train_seconds": 10.0 * seed,
            "seconds_per_epoch": 1.0, "metrics": {"ndcg@10": ndcg, "recall@20": 2 * ndcg, "by_group": groups}} | extra


def ctr(model, seed, auc):
    groups = {g: {"auc": auc - 0.1} for g in ("tail_items", "tail_users")}
    return {"model": model, "task": "ctr", "dataset": "ml-100k", "split": "ctr", "seed": seed, "train_seconds": 1.0,
            "seconds_per_epoch": 0.5, "metrics": {"auc": auc, "logloss": 0.6, "by_group": groups},
            "parameters": {"trainable": 1234, "frozen": 0}}


@pytest.fixture
def stored(tmp_path):
    from llmrec_lite import evidence

    results = [rec("sasrec", 1, 0.99, label="sasrec-bce"), rec("pad", 1, 0.30), rec("pad", 2, 0.10, stale=True),
               rec("mf", 1, 0.5, split="random"), ctr("din", 1, 0.70), ctr("llmcf-din", 1, 0.78)]
    store = tmp_path / "evidence.jsonl"
    evidence.write([evidence.as_run(r) for r in results], store)
    evidence.write([evidence.table_row("bahe_cost", ["ml-100k", 20], {"speed-up": 5.0}, "python benchmarks/bahe_cost.py")],
                   store)
    more = [rec("sasrec", 1, 0.10, label="sasrec-bce"),  # the same run again: it replaces the first write
            rec("sasrec", 2, 0.20, label="sasrec-bce")]
    evidence.write([evidence.as_run(r) for r in more], store)
    return store


def test_one_row_per_label_with_mean_and_std_over_seeds(stored):
    board = leaderboard(load_records(stored))
    row = board.set_index("model").loc["pad"]
    assert row["seeds"] == 2 and row["ndcg@10"] == pytest.approx(0.2) and row["ndcg@10 std"] == pytest.approx(math.sqrt(0.02))
    assert row["tail-item N@10"] == pytest.approx(0.1) and row["train s"] == pytest.approx(15.0) and row["stale"]
    sas = board.set_index("model").loc["sasrec-bce"]
    assert sas["seeds"] == 2 and sas["ndcg@10"] == pytest.approx(0.15)  # 0.99 (replaced by seed 1's later write) gone
    assert sas["paper"] == "baseline" and board.set_index("model").loc["llmcf-din", "paper"] == "LLM-CF"
    # per dataset: ranking before CTR, each split on its own, best first
    assert board["model"].tolist() == ["mf", "pad", "sasrec-bce", "llmcf-din", "din"]
    assert board.set_index("model").loc["din", "trainable params"] == 1234


def test_filters_and_markdown_and_json(stored):
    records = load_records(stored)
    board = leaderboard(records, task="ctr")
    assert set(board["model"]) == {"din", "llmcf-din"} and board["auc"].iloc[0] == pytest.approx(0.78)
    md = to_markdown(leaderboard(records))
    assert "| pad † | PAD | loo | 2 | 0.2000 ± 0.1414 |" in md and "† measured before the issue-10" in md
    assert md.count("### ml-100k") == 3  # random, leave-one-out and CTR tables
    assert "No stored benchmark run here for AlphaRec" in md and "Molar (measured in notebooks/04_molar.ipynb)" in md
    assert missing_papers(board) == [p for p in PAPERS["paper"] if p != "LLM-CF"]
    rows = json.loads(to_json(board))
    assert rows[0]["model"] == "llmcf-din" and "ndcg@10" not in rows[0] and rows[0]["auc std"] is None
    with pytest.raises(ValueError, match=r"no stored runs for dataset='netflix'.*\['ml-100k'\]"):
        leaderboard(records, dataset="netflix")


def test_cli_prints_the_table_and_names_bad_files(stored, tmp_path, capsys):
    assert main(["leaderboard", "--evidence", str(stored), "--dataset", "ml-100k", "--task", "ranking"]) == 0
    out = capsys.readouterr().out
    assert "| sasrec-bce | baseline | loo | 2 | 0.1500 ± 0.0707 |" in out and "din" not in out
    assert main(["leaderboard", "--evidence", str(stored), "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 5
    assert main(["leaderboard", "--evidence", str(tmp_path / "none.jsonl")]) == 2
    assert "no evidence store at" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"table": "runs"}\n{not json\n')
    assert main(["leaderboard", "--evidence", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl, line 2, is not an evidence record" in err and len(err.strip().splitlines()) == 1


def test_the_repository_benchmark_renders():
    board = leaderboard(load_records())
    assert {"ml-100k", "amazon-pantry"} <= set(board["dataset"]) and (board["seeds"] >= 1).all()
    assert "### ml-100k" in to_markdown(board)


def test_seed_gain_pairs_runs_seed_by_seed():
    from llmrec_lite.leaderboard import seed_gain

    recs = [rec("pad", s, v) for s, v in ((1, 0.30), (2, 0.20), (3, 0.25))] + \
           [rec("sasrec", s, v, label="sasrec-bce") for s, v in ((1, 0.20), (2, 0.10), (3, 0.15), (4, 0.9))]
    g = seed_gain(recs, "pad", "sasrec-bce", "ml-100k")
    assert g["n"] == 3 and g["gain"] == pytest.approx(0.10)  # seed 4 has no pad run: left out
    assert g["low"] == pytest.approx(0.10) and g["high"] == pytest.approx(0.10) and g["beyond seed noise"]  # no spread
    g = seed_gain(recs, "pad", "sasrec-bce", "ml-100k", group="tail_items")
    assert g["gain"] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="no seed run of both 'pad' and 'mf'"):
        seed_gain(recs, "pad", "mf", "ml-100k")


def test_contrasts_pair_each_mechanism_with_its_baseline_on_every_dataset():
    from llmrec_lite.leaderboard import contrasts

    recs = [rec("pad", 1, 0.30), rec("pad", 2, 0.90, stale=True), rec("pad", 1, 0.05, dataset="amazon-pantry")]
    recs += [rec("sasrec", s, 0.20, label="sasrec-bce", dataset=d) for s in (1, 2) for d in ("ml-100k", "amazon-pantry")]
    table = contrasts(recs)
    assert table[["comparison", "dataset", "n"]].values.tolist() == [["pad − sasrec-bce", "amazon-pantry", 1],
                                                                     ["pad − sasrec-bce", "ml-100k", 1]]  # stale seed 2 out
    assert table["gain"].tolist() == pytest.approx([-0.15, 0.10]) and table["tail-item gain"].tolist() == pytest.approx([-0.075, 0.05])
    assert contrasts(recs, ["netflix"]).empty and "tail-item gain" in contrasts(recs, ["netflix"]).columns


def test_results_prose_is_rendered_from_the_numbers():
    bench = _bench()
    ref = bench.RECBOLE
    recs = [{"model": m, "dataset": "ml-100k", "split": "random", "seed": s,
             "metrics": {k: v * f for k, v in ref[m].items()}} for m in ref for s, f in ((2020, 0.95), (1, 1.01))]
    recs.append({"model": "din", "dataset": "ml-100k", "split": "ctr", "seed": 2020, "best_epoch": 3, "epochs": 8})
    text = bench.notes(recs)
    assert "the mean over seeds is within 2.0% of RecBole and the single seed-2020 draw within 5.0%-5.0%." in text
    assert "Its best validation epoch is 3 of 8 trained (seed 2020)" in text
    assert "(no DIN run in this results file)" in bench.notes(recs[:-1])


def _bench():
    return load_script("benchmarks/run.py", "bench_run")


def test_results_name_the_stale_rows_and_each_runs_threads():
    bench = _bench()
    m = {"recall@20": 0.1, "ndcg@20": 0.1, "hr@10": 0.1, "ndcg@10": 0.1,
         "by_group": {g: {"ndcg@10": 0.1, "recall@20": 0.1} for g in ("tail_users", "tail_items")}}
    fresh = {"model": "pad", "dataset": "amazon-pantry", "split": "loo", "seed": 2020, "metrics": m, "epochs": 3,
             "seconds_per_epoch": 2.0, "environment": {"threads": 1}}
    old = {**fresh, "model": "llmesr", "stale": True, "environment": {}}
    busy = {**fresh, "model": "sasrec", "timing_contended": True}
    assert "Every row was measured with issue 10's fidelity fixes in place." in bench.notes([fresh])
    assert "† Rows marked † (llmesr (amazon-pantry)) were measured before" in bench.notes([fresh, old])
    rows = bench.table([fresh, old, busy]).splitlines()[2:]
    assert rows[0].startswith("| pad | amazon-pantry |") and "| 2.00 | 1 |" in rows[0]
    assert rows[1].startswith("| llmesr † |") and "| 2.00 | ? |" in rows[1]        # no thread count stored
    assert "| — (contended) | 1 |" in rows[2]


def test_only_keeps_a_models_variants_unless_exact():
    bench = _bench()
    jobs = [(m, d, [2020]) for d in ("ml-100k", "amazon-scientific")
            for m in ("llmesr", "llmesr-alpha0", "llmesr-ce-alpha0", "sasrec", "sasrec-bce",
                      "alpharec-linear", "alpharec-linear:random", "alpharec")]
    sci = [(m, "amazon-scientific", [2020]) for m in ("llmesr", "llmesr-alpha0", "llmesr-ce-alpha0")]
    assert bench.select(jobs, ["llmesr"], ["amazon-scientific"]) == sci
    assert bench.select(jobs, ["llmesr"], ["amazon-scientific"], exact=True) == sci[:1]
    assert [j[0] for j in bench.select(jobs, ["alpharec-linear"], ["ml-100k"])] == ["alpharec-linear",
                                                                                   "alpharec-linear:random"]
    assert [j[0] for j in bench.select(jobs, ["sasrec", "alpharec"], None, exact=True)] == ["sasrec", "alpharec"] * 2
    assert bench.select(jobs, None, None) == jobs
    assert bench.select(jobs, ["nope"], None) == []


def test_a_run_over_new_seeds_keeps_the_stored_seeds(tmp_path):
    """benchmarks/run.py writes each finished run into the store: same (label, dataset, split, seed) replaced, the
    other seeds and datasets kept."""
    from llmrec_lite import evidence

    store = tmp_path / "e.jsonl"
    saved = [rec("mf", s, 0.1, dataset="amazon-scientific", split="random") for s in (2020, 1)]
    saved += [rec("sasrec", 2020, 0.1, dataset="amazon-scientific", label="sasrec-bce"),
              rec("mf", 1, 0.1, dataset="ml-100k", split="random")]
    evidence.write([evidence.as_run(r) for r in saved], store)
    evidence.write([evidence.as_run(rec("mf", s, 0.5, dataset="amazon-scientific", split="random")) for s in (1, 2)],
                   store)
    got = {(evidence.label(r), r["dataset"], r["seed"]): r["metrics"]["ndcg@10"] for r in load_records(store)}
    assert got == {("mf", "amazon-scientific", 2020): 0.1, ("mf", "amazon-scientific", 1): 0.5,
                   ("mf", "amazon-scientific", 2): 0.5, ("sasrec-bce", "amazon-scientific", 2020): 0.1,
                   ("mf", "ml-100k", 1): 0.1}


def test_the_cross_dataset_block_is_rendered_from_every_stored_seed():
    bench = _bench()
    recs = [rec(m, seed, v, split="random", dataset="amazon-pantry")
            for m, seed, v in (("mf", 1, 0.10), ("mf", 2, 0.20), ("lightgcn", 1, 0.15), ("lightgcn", 2, 0.05),
                               ("alpharec", 1, 0.20), ("alpharec", 2, 0.30))]
    recs += [rec("pad", 1, 0.40, dataset="ml-100k"), rec("pad", 2, 0.90, dataset="ml-100k", stale=True),
            rec("sasrec", 1, 0.30, dataset="ml-100k", label="sasrec-bce")]
    for r in recs:
        r["metrics"]["ndcg@20"] = r["metrics"]["ndcg@10"]
    text = bench.across_datasets(recs)
    rows = {line.split(" | ")[0]: line for line in text.splitlines()}
    # mf on pantry: recall@20 0.2 and 0.4 -> 0.3000 ± 0.1414 (sample std); ndcg@20 0.15; tail R@20 0.15; 2 seeds
    assert rows["| MF-BPR (`mf`)"] == "| MF-BPR (`mf`) | – | 0.3000 ± 0.1414 / 0.1500 (0.1500) [2] |"
    assert "| PAD (`pad`) | 0.4000 (0.2000) [1] | – |" in text          # the stale seed-2 run is left out
    # AlphaRec − LightGCN, recall@20, seeds 1 and 2: +0.10 and +0.50 -> mean +0.30, t(1) interval 0.30 ± 12.706 * 0.2
    gain = rows["| AlphaRec − LightGCN, recall@20"]
    assert gain.endswith("| – | +0.3000 [-2.2412, +2.8412] (2) |")
    assert rows["| PAD − SASRec-BCE, ndcg@10"].endswith("| +0.1000 (1) | – |")
    assert text.splitlines()[0].endswith("| ml-100k | amazon-pantry |")   # only datasets with runs, in order
    assert bench.across_datasets([rec("mf", 1, 0.1, dataset="netflix")]) == ""


def test_a_marked_block_is_replaced_and_nothing_else(tmp_path, capsys):
    from llmrec_lite.io import replace_block

    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- BENCH:BEGIN -->\nold\ntable\n<!-- BENCH:END -->\nafter <!-- BENCH:END -->\n")
    assert replace_block(readme, "BENCH", "| new |")
    assert readme.read_text() == "intro\n<!-- BENCH:BEGIN -->\n| new |\n<!-- BENCH:END -->\nafter <!-- BENCH:END -->\n"
    readme.write_text("no markers\n<!-- BENCH:END -->\n<!-- BENCH:BEGIN -->\n")      # end before begin: not a block
    assert not replace_block(readme, "BENCH", "| new |")
    assert readme.read_text() == "no markers\n<!-- BENCH:END -->\n<!-- BENCH:BEGIN -->\n"
    assert "has no <!-- BENCH:BEGIN --> ... <!-- BENCH:END --> markers" in capsys.readouterr().out


def test_superseded_and_notebook_runs_are_left_out(tmp_path):
    from llmrec_lite import evidence

    store = tmp_path / "evidence.jsonl"
    evidence.write([evidence.as_run(r) for r in (rec("molar", 1, 0.05, superseded="first pass; rerun by ..."),
                                                 rec("molar", 2, 0.07), rec("pad", 1, 0.2, notebook="03"))], store)
    kept = load_records(store)
    assert [(r["model"], r["seed"]) for r in kept] == [("molar", 2)]


def test_llmesr_with_ce_is_paired_with_the_ce_sasrec_not_the_bce_one():
    """LLM-ESR trained with CE is measured against the SASRec with the same loss (the benchmark's ``sasrec``)."""
    from llmrec_lite.leaderboard import seed_summary

    recs = [rec("llmesr", s, v, label="llmesr-ce-alpha0", best_valid=v) for s, v in ((1, 0.30), (2, 0.50))]
    recs += [rec("sasrec", s, v, best_valid=v) for s, v in ((1, 0.20), (2, 0.20))]                 # CE
    recs += [rec("sasrec", s, 0.90, label="sasrec-bce", best_valid=0.9) for s in (1, 2)]            # BCE: not its pair
    g = seed_summary(recs)["ml-100k"]["gains"]["llmesr-ce-alpha0"]
    assert g["baseline"] == "sasrec"
    # per seed +0.10 and +0.30: mean +0.20; tail items (half of ndcg@10 in rec) +0.05 and +0.15: mean +0.10
    assert g["all"]["per_seed"] == pytest.approx([0.10, 0.30]) and g["all"]["diff"] == pytest.approx(0.20)
    assert g["tail_items"]["diff"] == pytest.approx(0.10)
    # t(1) 95% interval: 0.20 ± 12.706 * std(0.1, 0.3) / sqrt(2) = 0.20 ± 12.706 * 0.1
    assert g["all"]["low"] == pytest.approx(0.20 - 1.2706, abs=1e-3) and not g["all"]["exceeds_spread"]
