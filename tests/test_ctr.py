"""CTR as a first-class task: the click-through view, the CTR contract, AUC/LogLoss per group, early stopping
on validation AUC only, and DIN (the non-LLM CTR reference)."""
import numpy as np
import pandas as pd
import pytest
import torch

from llmrec_lite.data import build_dataset, ctr_view, leave_one_out, make_split
from llmrec_lite.experiment import format_table, train_and_test
from llmrec_lite.metrics import auc, evaluate_ctr, logloss, paired_ctr_difference
from llmrec_lite.models import DIN, MODELS
from llmrec_lite.models.base import CTRRecommender

CTR = sorted(n for n, spec in MODELS.items() if spec.task == "ctr" and not spec.reads_text)  # LLM CTR models: their own tests


def tiny():
    """User 1 rates 6 items; items 3 and 4 share a second; labels 5,2,4,4,1,5 -> 1,0,1,1,0,1."""
    raw = pd.DataFrame({"user_raw": [1] * 6 + [2] * 3, "item_raw": [1, 2, 3, 4, 5, 6, 1, 2, 3],
                        "rating": [5, 2, 4, 4, 1, 5, 3, 5, 4.0], "timestamp": [10, 20, 30, 30, 40, 50, 5, 6, 7]})
    items = pd.DataFrame({"title": [f"t{i}" for i in range(1, 7)]}, index=pd.Index(range(1, 7), name="raw_id"))
    return build_dataset("tiny", raw, items)


def test_history_is_strictly_earlier_in_time_with_labels():
    v = ctr_view(tiny(), max_history=3, ratios=(0.5, 0.25, 0.25))
    rows = pd.concat([v.train, v.valid, v.test]).sort_values(["user", "item"])
    u0 = rows[rows.user == 0].set_index("item")
    assert u0.loc[0, "history"] == [] and u0.loc[1, "history"] == [0]
    assert u0.loc[2, "history"] == [0, 1] and u0.loc[3, "history"] == [0, 1]  # same second: not each other's
    assert u0.loc[4, "history"] == [1, 2, 3] and u0.loc[4, "history_label"] == [0, 1, 1]  # last 3 only
    assert u0["label"].tolist() == [1, 0, 1, 1, 0, 1]
    a = v.arrays("train")
    r = int(np.flatnonzero((a["user"] == 0) & (a["item"] == 2))[0])
    assert a["hist"][r].tolist() == [0, 1, 2] and a["hist_label"][r].tolist() == [-1, 1, 0]  # ids + 1, left-padded


def test_parts_are_ordered_in_time_per_user(ml100k):
    v = make_split(ml100k, "ctr")
    assert v.protocol == "ctr" and len(v.train) + len(v.valid) + len(v.test) == 100000
    ts = ml100k.interactions.set_index(["user", "item"])["timestamp"]
    last_train = v.train.assign(t=ts.loc[list(zip(v.train.user, v.train.item))].to_numpy()).groupby("user").t.max()
    first_test = v.test.assign(t=ts.loc[list(zip(v.test.user, v.test.item))].to_numpy()).groupby("user").t.min()
    common = first_test.index.intersection(last_train.index)
    assert (first_test[common] >= last_train[common]).all()
    assert set(v.train.label.unique()) == {0.0, 1.0}


def test_a_ctr_view_needs_explicit_ratings(ml100k):
    from llmrec_lite.data import DataError

    with pytest.raises(DataError, match="single rating value"):
        ctr_view(ml100k.implicit(5))


def test_evaluate_ctr_matches_hand_computed_groups(synth):
    v = ctr_view(synth)

    class Fixed(CTRRecommender):  # scores = item id: a known ranking
        def __init__(self, split):
            super().__init__(split)
            self.w = torch.nn.Parameter(torch.zeros(()))

        def predict(self, batch):
            return (batch["item"].float() - 20) / 10 + self.w

    m = Fixed(v)
    out = evaluate_ctr(m, v, "test")
    a = v.arrays("test")
    p = 1 / (1 + np.exp(-(a["item"] - 20) / 10))
    assert out["auc"] == pytest.approx(auc(a["label"], a["item"]))
    assert out["logloss"] == pytest.approx(logloss(a["label"], p), rel=1e-5)
    tail = v.tail_users[a["user"]]
    assert out["by_group"]["tail_users"]["n"] == tail.sum()
    assert out["by_group"]["tail_users"]["auc"] == pytest.approx(auc(a["label"][tail], a["item"][tail]))
    head = v.head_items[a["item"]]
    assert out["by_group"]["head_items"]["n"] + out["by_group"]["tail_items"]["n"] == len(a["label"])
    assert out["by_group"]["head_items"]["logloss"] == pytest.approx(logloss(a["label"][head], p[head]), rel=1e-5)


def test_ctr_models_refuse_a_ranking_split(synth):
    with pytest.raises(ValueError, match="CTR model: give it data.ctr_view"):
        DIN(leave_one_out(synth))
    with pytest.raises(ValueError, match="expects the 'ctr' split"):
        train_and_test("din", leave_one_out(synth), progress=False)


@pytest.mark.parametrize("name", CTR)
def test_ctr_model_learns_and_reproduces(synth, name):
    """On the synthetic data a rating is high exactly when the item is of the user's genre: learnable from the
    history. Training lowers the loss, beats chance on test, and the same seed gives the same numbers."""
    v = ctr_view(synth)
    recs = []
    for _ in range(2):
        _, res, rec = train_and_test(name, v, progress=False, epochs=15, patience=15, batch_size=64, lr=3e-3)
        recs.append(rec)
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert recs[0]["metrics"]["auc"] > 0.6
    assert recs[0]["metrics"] == recs[1]["metrics"]
    assert recs[0]["task"] == "ctr" and recs[0]["hyperparameters"]["valid_metric"] == "auc"
    assert set(recs[0]["metrics"]["by_group"]) == {"head_users", "tail_users", "head_items", "tail_items"}
    assert "auc" in format_table([rec]) and "tail_items" in format_table([rec])


def test_ctr_early_stopping_never_reads_test(synth, monkeypatch):
    import llmrec_lite.trainer as tr

    v = ctr_view(synth)
    real = tr.evaluate_ctr
    stages = []

    def guarded(model, split, stage, **kw):
        stages.append(stage)
        assert stage == "valid", "the trainer read the test part"
        return real(model, split, stage, **kw)

    monkeypatch.setattr(tr, "evaluate_ctr", guarded)
    _, res, rec = train_and_test("din", v, progress=False, epochs=4, patience=1, batch_size=64)
    assert stages and rec["best_valid"] == max(r["valid_auc"] for r in res.history)
    assert all("valid_logloss" in r for r in res.history)
    # the test rows' probabilities come back with the run (one pass over test), as evaluate_ctr gives them
    m, res, rec = train_and_test("din", v, progress=False, epochs=2, patience=1, batch_size=64)
    again = evaluate_ctr(m, v, "test", per_row=True)
    assert np.allclose(res.test_rows["prob"], again["per_row"]["prob"]) and rec["metrics"]["auc"] == pytest.approx(again["auc"])
    assert paired_ctr_difference(res.test_rows, again, n_resamples=20)["diff"] == pytest.approx(0)


def test_din_attention_ignores_padding(synth):
    v = ctr_view(synth)
    m = DIN(v).eval()
    e_t = m.item_emb(torch.tensor([3]))
    _, a = m.interest(e_t, torch.tensor([[0, 0, 5, 7]]))
    assert a[0, :2].eq(0).all() and a[0, 2:].ne(0).all()
    hist = torch.tensor([[0, 0, 5, 7]])
    v1, _ = m.interest(e_t, hist)
    with torch.no_grad():
        m.item_emb.weight[0] = 100.0  # the padding row's content must not matter
    v2, _ = m.interest(e_t, hist)
    assert torch.allclose(v1, v2)


def test_din_user_field_makes_the_user_matter_and_is_off_by_default(synth):
    v = ctr_view(synth)
    batch = {"user": torch.tensor([0, 1]), "item": torch.tensor([3, 3]), "hist": torch.tensor([[0, 5, 7]] * 2)}
    torch.manual_seed(0)
    plain = DIN(v).eval()
    assert plain.user_emb is None
    p = plain.predict(batch)
    assert torch.allclose(p[0], p[1])  # no user field: same behaviours and target, same score
    torch.manual_seed(0)
    with_user = DIN(v, user_field=True).eval()
    assert with_user.user_emb.weight.shape == (v.n_users, with_user.dim)
    q = with_user.predict(batch)
    assert not torch.allclose(q[0], q[1])  # the user's own embedding enters the DNN
    with torch.no_grad():
        with_user.user_emb.weight[1] = with_user.user_emb.weight[0]
    q = with_user.predict(batch)
    assert torch.allclose(q[0], q[1])  # ... and only through that embedding


def test_paired_ctr_difference_by_hand():
    from llmrec_lite.metrics import paired_ctr_difference

    rng = np.random.default_rng(0)
    n = 400
    user, item, label = rng.integers(40, size=n), rng.integers(30, size=n), (rng.random(n) < 0.4).astype(float)
    good = np.clip(0.5 + 0.3 * (label - 0.5) + 0.2 * rng.random(n) - 0.1, 0.01, 0.99)  # informative
    noise = rng.random(n)  # chance
    res = lambda p: {"per_row": {"label": label, "prob": p, "user": user, "item": item}}
    d = paired_ctr_difference(res(good), res(noise), "auc", n_resamples=300)
    assert d["diff"] == pytest.approx(auc(label, good) - auc(label, noise))
    assert 0 < d["low"] < d["diff"] < d["high"] and d["n_users"] == len(np.unique(user))
    same = paired_ctr_difference(res(good), res(good), "logloss", n_resamples=50)
    assert same["diff"] == same["low"] == same["high"] == 0
    with pytest.raises(ValueError, match="different rows"):
        paired_ctr_difference(res(good), {"per_row": {"label": label, "prob": good, "user": user[::-1], "item": item}})
    with pytest.raises(ValueError, match="per_row=True"):
        paired_ctr_difference(res(good), {"auc": 0.5})


def test_resampled_ctr_matches_sklearn_with_ties_and_weights():
    """The all-resamples-at-once AUC / LogLoss equal sklearn's weighted ones, resample by resample, and
    paired_ctr_difference's interval equals the one-resample-at-a-time loop it replaced."""
    from sklearn.metrics import log_loss, roc_auc_score

    from llmrec_lite.metrics import _resampled_ctr, paired_ctr_difference

    rng = np.random.default_rng(1)
    n, n_users = 300, 25
    user = rng.integers(n_users, size=n)
    label = (rng.random(n) < 0.3).astype(float)
    prob = np.clip(np.round(0.4 + 0.3 * label + 0.3 * rng.standard_normal(n), 1), 0.05, 0.95)  # ~10 tie groups
    assert len(np.unique(prob)) < 15
    counts = rng.integers(0, 3, size=(7, n_users)).astype(float)
    got_auc, got_ll = (_resampled_ctr(label, prob, user, counts, m, chunk=3) for m in ("auc", "logloss"))
    for r in range(len(counts)):
        w = counts[r, user]
        assert got_auc[r] == pytest.approx(roc_auc_score(label, prob, sample_weight=w), abs=1e-12)
        assert got_ll[r] == pytest.approx(log_loss(label, prob, sample_weight=w), abs=1e-12)

    other = np.round(rng.random(n), 2)
    res = lambda p: {"per_row": {"label": label, "prob": p, "user": user, "item": np.arange(n)}}
    users, inverse = np.unique(user, return_inverse=True)
    draw, diffs = np.random.default_rng(5), []
    for _ in range(200):  # the loop paired_ctr_difference used before
        w = np.bincount(draw.integers(len(users), size=len(users)), minlength=len(users))[inverse].astype(float)
        if (w * label).sum() and (w * (1 - label)).sum():
            diffs.append(roc_auc_score(label, prob, sample_weight=w) - roc_auc_score(label, other, sample_weight=w))
    d = paired_ctr_difference(res(prob), res(other), n_resamples=200, seed=5)
    assert [d["low"], d["high"]] == pytest.approx(list(np.percentile(diffs, [2.5, 97.5])), abs=1e-12)
    assert d["diff"] == pytest.approx(roc_auc_score(label, prob) - roc_auc_score(label, other), abs=1e-12)
