import math

import pandas as pd
import pytest
import torch

from llmrec_lite.data import leave_one_out
from llmrec_lite.data.dataset import build_dataset
from llmrec_lite.data.split import Split
from llmrec_lite.metrics import auc, evaluate, logloss, ranking_metrics
from llmrec_lite.models import Pop

L2, L3, L5 = math.log2(2), math.log2(3), math.log2(5)


def tiny_split():
    """2 users x 5 items. user 0: seen {0}, test {2, 4}; user 1: seen {0, 1}, test {3}."""
    rows = [(1, i, 5.0, t) for t, i in enumerate([0, 2, 4, 1])] + [(2, i, 5.0, t) for t, i in enumerate([0, 1, 3, 2])]
    raw = pd.DataFrame(rows, columns=["user_raw", "item_raw", "rating", "timestamp"])
    items = pd.DataFrame({"title": list("abcde"), "text": list("abcde")}, index=range(5))
    ds = build_dataset("tiny", raw, items)
    df = ds.interactions
    pick = lambda pairs_: df[[(u, i) in pairs_ for u, i in zip(df.user, df.item)]]
    train, valid, test = pick({(0, 0), (1, 0), (1, 1)}), pick({(0, 1), (1, 2)}), pick({(0, 2), (0, 4), (1, 3)})
    return Split(ds, "random", train, valid, test)


def scores_fn(users, stage):
    table = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.1],   # user 0 ranks (after masking 0, 1): 2, 3, 4
                          [0.9, 0.8, 0.7, 0.6, 0.1]])  # user 1 ranks (after masking 0, 1, 2): 3, 4
    return table[users]


def test_ranking_metrics_by_hand():
    hits = torch.tensor([[0, 1, 0, 1]], dtype=torch.bool)
    m = ranking_metrics(hits, torch.tensor([2]), ks=(2, 4))
    assert m["hr@2"].item() == 1 and m["recall@2"].item() == 0.5
    assert m["ndcg@2"].item() == pytest.approx((1 / L3) / (1 + 1 / L3))
    assert m["recall@4"].item() == 1
    assert m["ndcg@4"].item() == pytest.approx((1 / L3 + 1 / L5) / (1 + 1 / L3))


def test_evaluate_masks_seen_and_averages_users():
    s = tiny_split()
    r = evaluate(scores_fn, s, "test", ks=(1, 2), groups=False)
    # test stage masks train + valid. user 0: ranking 2, 3, 4 -> @1 hit, @2 [1, 0]; user 1: ranking 3, 4 -> @1 hit
    assert r["n_users"] == 2
    assert r["hr@1"] == 1.0
    assert r["recall@1"] == pytest.approx((1 / 2 + 1) / 2)
    assert r["recall@2"] == pytest.approx((1 / 2 + 1) / 2)
    assert r["ndcg@2"] == pytest.approx((1 / (1 + 1 / L3) + 1) / 2)
    unmasked = evaluate(scores_fn, s, "test", ks=(1,), groups=False, mask_seen=False)
    assert unmasked["hr@1"] == 0.0  # item 0 (seen) would take the top slot


def test_item_groups_keep_only_group_targets():
    s = tiny_split()
    s.__dict__["head_items"] = torch.tensor([False, False, True, False, False]).numpy()
    r = evaluate(scores_fn, s, "test", ks=(2,))
    head, tail = r["by_group"]["head_items"], r["by_group"]["tail_items"]
    assert head["n_users"] == 1 and head["recall@2"] == 1.0  # user 0's head target (item 2) is ranked 1st
    assert tail["n_users"] == 2  # user 0: target 4 (rank 3) missed @2; user 1: target 3 hit
    assert tail["recall@2"] == pytest.approx(0.5)


def test_groups_add_up_to_overall_by_weight(ml100k):
    s = leave_one_out(ml100k)
    r = evaluate(Pop(s), s, "test")
    g = r["by_group"]
    for a, b in (("head_users", "tail_users"), ("head_items", "tail_items")):
        assert g[a]["n_users"] + g[b]["n_users"] == r["n_users"]
        for k in ("ndcg@10", "hr@20"):
            mixed = (g[a][k] * g[a]["n_users"] + g[b][k] * g[b]["n_users"]) / r["n_users"]
            assert mixed == pytest.approx(r[k], abs=1e-6)


def test_sampled_negatives_are_easier(ml100k):
    s = leave_one_out(ml100k)
    full = evaluate(Pop(s), s, "test", groups=False)
    sampled = evaluate(Pop(s), s, "test", groups=False, n_negatives=100)
    assert sampled["hr@10"] > full["hr@10"]


def test_auc_logloss_by_hand():
    assert auc([1, 0, 1, 0], [0.9, 0.8, 0.3, 0.1]) == pytest.approx(0.75)
    assert logloss([1, 0], [0.8, 0.4]) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    with pytest.raises(ValueError, match="both positive and negative"):
        auc([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="differ in length"):
        logloss([1, 0], [0.5])


def test_k_larger_than_catalogue():
    s = tiny_split()
    r = evaluate(scores_fn, s, "test", ks=(10,), groups=False)
    # user 0: targets 2 and 4 at ranks 1 and 3 (item 3 between them); user 1: target at rank 1
    assert r["recall@10"] == 1.0 and r["ndcg@10"] == pytest.approx(((1 + 1 / math.log2(4)) / (1 + 1 / L3) + 1) / 2)


def test_candidates_rank_only_among_them():
    """Candidates {3, 4}: user 0 (test {2, 4}) keeps target 4, ranked after 3 -> rank 2;
    user 1 (test {3}) ranks 3 first. Item 2 is not a candidate and can no longer be recommended."""
    s = tiny_split()
    r = evaluate(scores_fn, s, "test", ks=(1, 2), candidates=[False, False, False, True, True], groups=False)
    assert r["n_users"] == 2
    assert r["recall@1"] == pytest.approx((0 + 1) / 2)
    assert r["ndcg@2"] == pytest.approx((1 / L3 + 1) / 2)
    with pytest.raises(ValueError, match="n_items"):
        evaluate(scores_fn, s, "test", candidates=[True, False])


def test_topk_hits_orders_exactly_as_a_stable_descending_sort():
    """The top-k gives the stable sort's order: ties inside the set and at its edge by column, -0.0 == 0.0, -inf,
    k > n; rows without ties (the fast path) and rows with them (the fallback) in one batch."""
    from llmrec_lite.metrics import topk_hits

    g = torch.Generator().manual_seed(0)
    scores = torch.randint(-3, 4, (64, 50), generator=g).float() / 2  # many ties, negative and positive values
    scores[scores == 0] = torch.where(torch.rand((scores == 0).sum(), generator=g) < 0.5, -0.0, 0.0)
    scores[:, ::7] = -torch.inf
    scores[0] = torch.tensor([1e-38, -1e-38, 3.4e38, -3.4e38, 0.0] * 10)
    targets = torch.rand(scores.shape, generator=g) < 0.3
    for k in (1, 10, 50, 80):
        idx, hit = topk_hits(scores, targets, k)
        ref = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
        assert torch.equal(idx, ref) and torch.equal(hit, torch.gather(targets, 1, ref))
    assert torch.equal(topk_hits(torch.zeros(2, 5), targets[:2, :5], 3)[0], torch.tensor([[0, 1, 2]] * 2))
    t = torch.zeros(1, 6, dtype=torch.bool)
    assert topk_hits(torch.tensor([[1., 5., 0., 5., 3., 2.]]), t, 3)[0].tolist() == [[1, 3, 4]]  # tie inside the set
    assert topk_hits(torch.tensor([[1., 5., 3., 5., 3., 2.]]), t, 3)[0].tolist() == [[1, 3, 2]]  # tie at its edge
    distinct = torch.randn(8, 50, generator=g)
    distinct[:, 10:20] = distinct[:, :1]  # a tie inside the top 20 only where it is the row's maximum
    for k in (5, 20):
        ref = torch.sort(distinct, dim=1, descending=True, stable=True).indices[:, :k]
        assert torch.equal(topk_hits(distinct, targets[:8], k)[0], ref)


def test_ties_are_not_broken_by_item_id():
    """A constant scorer must not get the low-id items: with 1000 items and target = item 0 for every
    user, HR@10 of a constant score is ~1% under a random tie-break (~100% if ties went by id)."""
    n_items, n_users = 1000, 200
    rows = [(u, 1 + u, 5.0, 0) for u in range(n_users)] + [(u, 0, 5.0, 1) for u in range(n_users)]
    rows += [(n_users, i, 5.0, 0) for i in range(n_items)]  # one user who saw every item
    raw = pd.DataFrame(rows, columns=["user_raw", "item_raw", "rating", "timestamp"])
    items = pd.DataFrame({"title": [str(i) for i in range(n_items)], "text": [str(i) for i in range(n_items)]})
    ds = build_dataset("ties", raw, items)
    df = ds.interactions
    target = df.item.min()
    test = df[(df.item == target) & (df.user < n_users)]
    s = Split(ds, "loo", df.drop(test.index), df.iloc[:0], test)
    zero = lambda users, stage: torch.zeros(len(users), s.n_items)
    r = evaluate(zero, s, "test", ks=(10,), groups=False)
    assert r["n_users"] == n_users and r["hr@10"] < 0.05
    assert evaluate(zero, s, "test", ks=(10,), groups=False) == r  # the order is fixed by the seed


def test_per_user_values_average_to_the_metric_and_pair_up(ml100k):
    from llmrec_lite.metrics import paired_difference

    s = leave_one_out(ml100k)
    a = evaluate(Pop(s), s, "test", per_user=True)
    b = evaluate(lambda u, stage: torch.zeros(len(u), s.n_items), s, "test", per_user=True)
    assert len(a["users"]) == a["n_users"] and a["per_user"]["ndcg@10"].mean() == pytest.approx(a["ndcg@10"])
    d = paired_difference(a, b, "ndcg@10")
    assert d["diff"] == pytest.approx(a["ndcg@10"] - b["ndcg@10"])
    assert d["low"] < d["diff"] < d["high"] and d["low"] > 0  # Pop clearly beats a constant scorer
    for g in ("tail_users", "tail_items"):
        dg = paired_difference(a, b, "ndcg@10", group=g)
        assert dg["n_users"] == a["by_group"][g]["n_users"]
        assert dg["diff"] == pytest.approx(a["by_group"][g]["ndcg@10"] - b["by_group"][g]["ndcg@10"])
    assert paired_difference(a, a)["high"] == 0.0
    with pytest.raises(ValueError, match="per_user=True"):
        paired_difference(evaluate(Pop(s), s, "test"), b)
    with pytest.raises(ValueError, match="different users"):
        paired_difference(a, {**b, "users": b["users"][1:]})
    with pytest.raises(ValueError, match="valid: "):
        paired_difference(a, b, group="cold_users")
