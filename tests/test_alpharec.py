import numpy as np
import pytest
import torch

from llmrec_lite.data import random_split
from llmrec_lite.losses import info_nce
from llmrec_lite.models import AlphaRec, AlphaRecLinear
from llmrec_lite.text import item_embeddings


@pytest.fixture(scope="module")
def split_and_z(synth):
    s = random_split(synth)
    return s, item_embeddings(synth.item_texts, "random-32", seed=0)


def test_info_nce_matches_hand_written_reference():
    g = torch.Generator().manual_seed(0)
    u, p, n = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g), torch.randn(3, 5, 4, generator=g)
    tau = 0.15
    ref = []
    for b in range(3):
        cos = lambda a, c: float(a @ c / (a.norm() * c.norm()))
        pos = np.exp(cos(u[b], p[b]) / tau)
        negs = sum(np.exp(cos(u[b], n[b, j]) / tau) for j in range(5))
        ref.append(-np.log(pos / (pos + negs)))
    assert info_nce(u, p, n, tau).item() == pytest.approx(np.mean(ref), rel=1e-5)
    shared = n[0]  # a [N, d] tensor = the same negatives for every row
    assert info_nce(u, p, shared, tau).item() == pytest.approx(info_nce(u, p, shared.expand(3, 5, 4), tau).item(), rel=1e-6)


def test_linear_probe_is_one_bias_free_matrix(split_and_z):
    s, z = split_and_z
    m = AlphaRecLinear(s, item_z=z, dim=8, center=False)
    params = dict(m.named_parameters())
    assert list(params) == ["W.weight"] and params["W.weight"].shape == (8, 32)
    users, items = m.embed()
    assert torch.allclose(items, torch.as_tensor(z) @ params["W.weight"].T, atol=1e-6)


def test_users_start_as_mean_of_train_item_embeddings(split_and_z):
    s, z = split_and_z
    m = AlphaRec(s, item_z=z, center=False)
    for u in (0, 7, 31):
        items = s.train[s.train.user == u].item.to_numpy()
        np.testing.assert_allclose(m.z_user[u].numpy(), z[items].mean(0), rtol=1e-5, atol=1e-6)
    assert not any(n.startswith(("user_emb", "item_emb")) for n, _ in m.named_parameters())  # no ID embeddings
    assert [p.shape for p in m.mlp.parameters()][::2] == [(16, 32), (64, 16)]  # hidden = half the LM width


def test_passed_item_vectors_are_centred_unless_asked(split_and_z):
    from llmrec_lite.text import unit_rows

    s, z = split_and_z
    shifted = unit_rows(z + 3.0)  # a strongly anisotropic table (mean cosine near 1)
    m = AlphaRec(s, item_z=shifted)
    np.testing.assert_allclose(m.z_item.numpy(), unit_rows(shifted - shifted.mean(0)), atol=1e-6)
    np.testing.assert_allclose(AlphaRec(s, item_z=shifted, center=False).z_item.numpy(), shifted)
    with pytest.raises(ValueError, match="pass center=... to the model"):
        AlphaRec(s, item_z=z, encoder_kwargs={"center": False})


def test_user_sampler_takes_every_user_equally_often(split_and_z):
    """Official trainer: an epoch has n_train samples, user = users[index % n_users], one random positive."""
    s, z = split_and_z
    m = AlphaRec(s, item_z=z)
    users, items = map(torch.cat, zip(*m.train_batches(64, np.random.default_rng(0))))
    assert len(users) == len(s.train)
    counts = np.bincount(users.numpy(), minlength=s.n_users)
    active = np.bincount(s.train.user, minlength=s.n_users) > 0
    assert counts[active].max() - counts[active].min() <= 1 and counts[~active].sum() == 0
    assert m.sampler.is_positive(users.numpy(), items.numpy()).all()
    u2, _ = map(torch.cat, zip(*AlphaRec(s, item_z=z, sampler="interaction").train_batches(64, np.random.default_rng(0))))
    np.testing.assert_array_equal(np.bincount(u2.numpy(), minlength=s.n_users), np.bincount(s.train.user, minlength=s.n_users))


@pytest.mark.parametrize("dense", [True, False], ids=["dense-table", "sorted-keys"])
def test_shared_negatives_that_are_the_users_own_items_are_masked(split_and_z, monkeypatch, dense):
    s, z = split_and_z
    m = AlphaRec(s, item_z=z)
    assert m.seen_dense is not None  # a small catalogue gets the dense table; a large one the sorted keys
    if not dense:
        m.seen_dense = None
    u = torch.tensor([0, 1])
    i = torch.tensor([s.train[s.train.user == 0].item.iloc[0], s.train[s.train.user == 1].item.iloc[0]])
    own = i[0].item()  # user 0's positive, drawn as a shared negative
    other = next(j for j in range(s.n_items) if not m.sampler.is_positive(np.array([0, 1]), np.array([j, j])).any())
    monkeypatch.setattr(torch, "randint", lambda *a, **k: torch.tensor([own, other]))
    seen = {}
    import llmrec_lite.models.alpharec as mod

    monkeypatch.setattr(mod, "info_nce", lambda *a, neg_mask=None, **k: seen.setdefault("mask", neg_mask) if True else 0)
    m.neg_pool = torch.arange(s.n_items)
    m.loss((u, i))
    assert seen["mask"].tolist() == [[True, False], [bool(m.sampler.is_positive(np.array([1]), np.array([own]))[0]), False]]


def test_masked_negatives_leave_the_info_nce_denominator():
    g = torch.Generator().manual_seed(0)
    u, p, n = torch.randn(2, 4, generator=g), torch.randn(2, 4, generator=g), torch.randn(3, 4, generator=g)
    mask = torch.tensor([[False, True, False], [False, False, False]])
    full = info_nce(u[:1], p[:1], n[[0, 2]])
    second = info_nce(u[1:], p[1:], n)
    assert info_nce(u, p, n, neg_mask=mask).item() == pytest.approx((full.item() + second.item()) / 2, rel=1e-6)


def test_cold_items_get_finite_scores(synth):
    s = random_split(synth)
    cold = s.test.item.iloc[0]
    s.train = s.train[s.train.item != cold]  # the item never appears in training
    z = item_embeddings(synth.item_texts, "random-32")
    for cls in (AlphaRec, AlphaRecLinear):
        m = cls(s, item_z=z).eval()
        scores = m.score_all(torch.arange(s.n_users), "test")
        assert torch.isfinite(scores[:, cold]).all() and scores[:, cold].abs().sum() > 0


def test_training_lowers_infonce_and_embeddings_stay_frozen(split_and_z):
    from llmrec_lite.trainer import fit

    s, z = split_and_z
    m = AlphaRec(s, item_z=z, n_negatives=16)
    before = m.z_item.clone()
    r = fit(m, s, epochs=5, lr=5e-3, batch_size=64, progress=False)
    assert r.history[-1]["loss"] < r.history[0]["loss"]
    assert torch.equal(before, m.z_item)
    with pytest.raises(ValueError, match="rows"):
        AlphaRec(s, item_z=z[:-1])


def test_random_control_shape_and_norm():
    x = item_embeddings(["a", "b", "c"], "random")
    assert x.shape == (3, 384) and np.allclose(np.linalg.norm(x, axis=1), 1)
    assert not np.allclose(x, item_embeddings(["a", "b", "c"], "random", seed=1))


def test_intention_mixes_text_into_the_user_representation(split_and_z):
    s, z = split_and_z
    m = AlphaRec(s, item_z=z).eval()
    users = torch.arange(5)
    base = m.score_all(users, "test")
    assert torch.allclose(m.intention_scores(users, z[3], alpha=0.0), base, atol=1e-5)
    only = m.intention_scores(users, z[3], alpha=1.0)  # pure intention: the same ranking for everyone
    assert torch.allclose(only, only[:1].expand_as(only), atol=1e-5)
    half = m.intention_scores(users, z[3], alpha=0.5)
    assert not torch.allclose(half, base) and torch.isfinite(half).all()


def test_cold_hold_out_hides_items_from_training_and_negatives(synth):
    from llmrec_lite.data import hold_out_items
    from llmrec_lite.metrics import evaluate

    base = random_split(synth)
    s = hold_out_items(base, fraction=0.25, seed=0)
    cold = np.flatnonzero(s.cold_items)
    assert len(cold) == round(0.25 * s.n_items)
    assert not s.train.item.isin(cold).any() and not s.valid.item.isin(cold).any()
    assert s.test.equals(base.test)  # every test target is kept, cold ones included
    assert not np.isin(s.negative_pool, cold).any()
    m = AlphaRec(s, item_z=item_embeddings(synth.item_texts, "random-32"), n_negatives=64)
    drawn = {int(i) for _ in range(20) for i in m.neg_pool[torch.randint(len(m.neg_pool), (64,))]}
    assert not drawn & set(cold.tolist())
    res = evaluate(m, s, "test")
    assert {"cold_items", "warm_items"} <= set(res["by_group"])
    n_cold_users = s.test[s.test.item.isin(cold)].user.nunique()
    assert res["by_group"]["cold_items"]["n_users"] == n_cold_users
    with pytest.raises(ValueError, match="fraction"):
        hold_out_items(base, fraction=1.5)


def test_probe_explorer_trains_and_draws(synth):
    import matplotlib

    matplotlib.use("Agg")
    from llmrec_lite.explore import draw_probe, probe

    s = random_split(synth)
    rec = probe(s, "random-16", probe="mlp", epochs=2, batch_size=256)
    assert rec["label"] == "random-16 (mlp)" and rec["epochs"] == 2
    assert rec["hyperparameters"]["n_layers"] == 0 and rec["hyperparameters"]["item_z"] == f"<array [{s.n_items}, 16]>"
    fig = draw_probe(s, "random-32", epochs=2, references={"MF": 0.1}, controls=[rec])
    assert len(fig.axes[0].patches) == 2
    with pytest.raises(ValueError, match="valid"):
        probe(s, "random-16", probe="quadratic")


def test_intention_table_before_column_is_the_plain_ranking(split_and_z):
    from llmrec_lite.explore import intention_top_k

    s, z = split_and_z
    m = AlphaRec(s, item_z=z).eval()
    table = intention_top_k(m, s, 0, z[5], alpha=0.9, k=5)
    scores = m.score_all(torch.tensor([0]), "test")[0].detach().numpy()
    scores[s.seen("test")[0].toarray().ravel() > 0] = -np.inf
    titles = s.dataset.items.title
    assert [t.split(" [")[0] for t in table["before"]] == [titles[i] for i in np.argsort(-scores)[:5]]
    assert table.iloc[:, 0].tolist() != table.iloc[:, 1].tolist()
