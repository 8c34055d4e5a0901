import numpy as np
import pytest

from llmrec_lite.data import ctr_view, leave_one_out, random_split


def pairs(df):
    return set(zip(df.user, df.item))


def test_random_split_disjoint_complete_and_ratio(ml100k):
    s = random_split(ml100k, seed=2020)
    tr, va, te = pairs(s.train), pairs(s.valid), pairs(s.test)
    assert not (tr & va) and not (tr & te) and not (va & te)  # no leakage
    assert len(tr) + len(va) + len(te) == 100000 == len(tr | va | te)
    n = ml100k.interactions.groupby("user").size()
    assert (s.test.groupby("user").size() == np.floor(0.1 * n)).all()
    assert (s.train.groupby("user").size() == n - 2 * np.floor(0.1 * n)).all()
    # seen-masks never contain a target of their stage
    assert s.seen("valid").multiply(s.matrix("valid")).sum() == 0
    assert s.seen("test").multiply(s.matrix("test")).sum() == 0


def test_random_split_seeded(ml100k):
    a, b, c = random_split(ml100k, seed=1), random_split(ml100k, seed=1), random_split(ml100k, seed=2)
    assert pairs(a.test) == pairs(b.test) != pairs(c.test)


def test_leave_one_out_keeps_time_order(ml100k):
    s = leave_one_out(ml100k)
    assert len(s.test) == len(s.valid) == 943
    last = ml100k.interactions.groupby("user").tail(1)
    assert pairs(s.test) == pairs(last)
    t_train = s.train.groupby("user").timestamp.max()
    assert (t_train <= s.valid.set_index("user").timestamp).all()
    assert (s.valid.set_index("user").timestamp <= s.test.set_index("user").timestamp).all()


def test_sequences_never_contain_their_target(ml100k):
    s = leave_one_out(ml100k)
    valid_seq, test_seq = s.sequences("valid", 50), s.sequences("test", 50)
    v = s.valid.sort_values("user").item.to_numpy()
    # the test history ends with the valid item; the valid history does not contain it
    assert (test_seq[:, -1] == v + 1).all()
    assert (valid_seq[:, -1] != v + 1).all()
    hist = s.histories("train")
    assert (valid_seq[:, -1] == np.array([h[-1] + 1 for h in hist])).all()
    short = np.argmin([len(h) for h in hist])
    assert (valid_seq[short] == 0).sum() == 50 - len(hist[short])  # left padding


def test_head_tail_groups(ml100k):
    s = random_split(ml100k)
    head, pop = s.head_items, s.item_popularity
    assert head.sum() == round(0.2 * 1682)
    assert pop[head].min() >= pop[~head].max()
    tail, length = s.tail_users, s.user_history_length
    assert tail.sum() == round(0.8 * 943)
    assert length[tail].max() <= length[~tail].min()


def test_ctr_view_history_is_strictly_earlier(ml100k):
    v = ctr_view(ml100k, max_history=5)
    assert len(v.train) + len(v.valid) + len(v.test) == 100000
    ts = ml100k.interactions.set_index(["user", "item"])["timestamp"]
    rows = v.train[v.train.user < 50]
    for u, i, h in zip(rows.user, rows.item, rows.history):
        assert len(h) <= 5 and all(ts[(u, j)] < ts[(u, i)] for j in h)
    u0 = ml100k.interactions[ml100k.interactions.user == 0].sort_values("timestamp", kind="stable")
    first = v.train[(v.train.user == 0) & (v.train.item == u0.item.iloc[0])]
    assert first.history.iloc[0] == []


def test_pantry_repeat_targets_are_few(pantry):
    s = leave_one_out(pantry)
    repeats = s.seen("test").multiply(s.matrix("test")).sum()
    assert repeats == 336  # 2.6% of test users re-buy an earlier item; masked as in RecBole
    with pytest.raises(ValueError, match="valid"):
        s.seen("train")


def test_head_tail_cut_offs_break_ties_in_a_fixed_random_order(synth):
    """With equal popularity an id order would put the lowest ids in the head (MovieLens ids follow popularity)."""
    from llmrec_lite.data.split import tie_broken_order

    s = random_split(synth)
    s.__dict__["item_popularity"] = np.ones(s.n_items, int)  # every item tied
    head = np.flatnonzero(s.head_items)
    assert len(head) == round(0.2 * s.n_items) and head.max() > len(head)  # not simply the first ids
    again = random_split(synth)
    again.__dict__["item_popularity"] = np.ones(s.n_items, int)
    assert np.array_equal(head, np.flatnonzero(again.head_items))  # fixed
    order = tie_broken_order(np.array([2, 1, 2, 1, 0]))
    assert order[0] == 4 and set(order[1:3]) == {1, 3} and set(order[3:]) == {0, 2}
