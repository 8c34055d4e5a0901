"""The verdict table: words from hand-made seed runs, and the README's table is the one the evidence store renders."""
from pathlib import Path

import pytest

from llmrec_lite import verdicts
from llmrec_lite.verdicts import Claim, assess

ROOT = Path(__file__).resolve().parent.parent


def run(lab, seed, value, dataset="ml-100k", metric="ndcg@10", valid=0.1):
    return {"table": "runs", "label": lab, "model": lab, "dataset": dataset, "split": "loo", "seed": seed,
            "best_valid": valid, "metrics": {metric: value, "by_group": {"tail_items": {metric: value / 2}}}}


CLAIM = Claim("P", "nb.ipynb", "beats", "m", ("b",), "ndcg@10", ("ml-100k", "amazon-pantry"))


def runs(gains_by_dataset):
    out = []
    for d, gains in gains_by_dataset.items():
        for seed, g in zip((2020, 1, 2), gains):
            out += [run("b", seed, 0.1, d), run("m", seed, 0.1 + g, d)]
    return out


@pytest.mark.parametrize("gains, words, states", [
    ({"ml-100k": (0.01, 0.011, 0.012), "amazon-pantry": (0.02, 0.021, 0.019)}, "holds", ["holds", "holds"]),
    ({"ml-100k": (0.01, 0.011, 0.012), "amazon-pantry": (0.02, -0.02, 0.001)}, "partly", ["holds", "unclear"]),
    ({"ml-100k": (-0.01, -0.011, -0.012), "amazon-pantry": (0.02, -0.02, 0.001)}, "does not hold here",
     ["reversed", "unclear"]),
    ({"ml-100k": (0.01, 0.011, 0.012), "amazon-pantry": (0.02, 0.021)}, "pending", ["holds", "pending"]),
])
def test_verdict_words_from_paired_seed_gains(gains, words, states):
    a = assess(CLAIM, runs(gains))
    assert a["verdict"] == words and [r["state"] for r in a["per_dataset"]] == states
    first = a["per_dataset"][0]
    assert first["gain"] == pytest.approx(sum(gains["ml-100k"]) / 3) and first["n"] == 3


def test_a_parity_bar_and_the_baseline_with_most_seeds():
    parity = Claim("P", "nb.ipynb", "matches", "m", ("b", "c"), "ndcg@10", ("ml-100k",), bar=-0.01)
    recs = runs({"ml-100k": (-0.004, -0.005, -0.006)}) + [run("c", 2020, 0.5, valid=0.9)]  # c: one seed only
    a = assess(parity, recs)
    assert a["per_dataset"][0]["baseline"] == "b" and a["verdict"] == "holds"   # a small loss inside the parity bar
    assert assess(CLAIM, runs({"ml-100k": (-0.004, -0.005, -0.006), "amazon-pantry": (0, 0, 0)}))["verdict"] == \
        "does not hold here"


def test_superseded_runs_are_left_out():
    recs = runs({"ml-100k": (0.01, 0.011, 0.012)})
    for r in recs:
        r["superseded"] = "first pass"
    one = Claim("P", "nb.ipynb", "beats", "m", ("b",), "ndcg@10", ("ml-100k",))
    old, verdicts.CLAIMS = verdicts.CLAIMS, (one,)
    try:
        assert "not yet run" in verdicts.table(recs) and "**pending**" in verdicts.table(recs)
    finally:
        verdicts.CLAIMS = old


def test_the_readme_verdict_table_is_the_evidence_store_rendered():
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- VERDICTS:BEGIN -->\n", 1)[1].split("<!-- VERDICTS:END -->", 1)[0].strip()
    assert block == verdicts.table(), "README's verdicts are stale: run `python -m llmrec_lite verdicts --write`"
    assert len(block.splitlines()) == 2 + len(verdicts.CLAIMS)
    bench = (ROOT / "docs" / "benchmarks.md").read_text()
    for name, md in verdicts.cost_tables().items():
        assert f"<!-- {name}:BEGIN -->\n{md}\n<!-- {name}:END -->" in bench, f"docs/benchmarks.md's {name} is stale"


def test_the_readme_stays_short():
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) <= 15_000
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            for cell in line.strip("|").split("|"):
                assert len(cell.split()) <= 25, f"a README table cell over 25 words: {cell.strip()[:80]}..."


def test_gpu_table_puts_each_gpu_run_beside_the_uncontended_cpu_runs_of_its_row(tmp_path, monkeypatch):
    from llmrec_lite import evidence
    from llmrec_lite.verdicts import gpu_table

    store = tmp_path / "e.jsonl"
    monkeypatch.setenv("LLMREC_EVIDENCE", str(store))

    def run(device, seed, seconds, epochs, contended=False, lab="molar"):
        return evidence.as_run({"model": "molar", "dataset": "ml-100k", "split": "loo", "seed": seed, "epochs": epochs,
                                "train_seconds": seconds, "environment": {"device": device, "torch": "2.x",
                                                                          "contended": contended}}, lab, "cmd")
    evidence.write([run("cpu", 2020, 300.0, 100), run("cpu", 1, 500.0, 100),
                    run("cpu", 2, 9000.0, 100, contended=True),  # a time taken beside another job: not a cost
                    run("cuda", 3, 20.0, 200)], store)
    md = gpu_table()
    # GPU: 20 s / 200 epochs = 0.100 s per epoch; CPU: median(3.00, 5.00) = 4.00 over 2 runs -> 40x
    assert "| molar | ml-100k | 3 | CUDA, torch 2.x | 200 | 20 | 0.100 | 4.00 (2) | 40x |" in md
    store.unlink()
    evidence.write([run("cpu", 1, 500.0, 100)], store)
    assert gpu_table() == "No run on a GPU is stored yet."


def test_a_notebooks_verdict_names_the_claim_the_answer_and_each_datasets_interval():
    one = Claim("P", "nb.ipynb", "Model beats baseline", "m", ("b",), "ndcg@10", ("ml-100k", "amazon-pantry"))
    old, verdicts.CLAIMS = verdicts.CLAIMS, (one,)
    try:
        text = verdicts.notebook_verdict("P", "m against b, 3 seeds.",
                                         runs({"ml-100k": (0.01, 0.011, 0.012), "amazon-pantry": (0.02, -0.02, 0.001)}))
        with pytest.raises(ValueError, match="no claim for paper"):
            verdicts.notebook_verdict("Q", "")
    finally:
        verdicts.CLAIMS = old
    assert text.startswith("**Claim.** Model beats baseline.") and "**Answer: partly.**" in text
    assert "ml-100k +0.0110 [" in text and "over 3 seeds (the gain's interval lies above 0)" in text
    assert "amazon-pantry +0.0003 [" in text and "(the interval includes 0)" in text
