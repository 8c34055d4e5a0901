import numpy as np
import pytest
import torch

from llmrec_lite.data import ctr_view, leave_one_out, random_split
from llmrec_lite.metrics import evaluate
from llmrec_lite.models import MODELS, MF, SASRec, get_model
from llmrec_lite.models.base import PairSampler
from llmrec_lite.graph import normalized_adjacency
from llmrec_lite.trainer import fit


def test_negatives_are_never_train_positives(synth):
    s = random_split(synth)
    sampler = PairSampler(s)
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(s.n_users), 50)
    neg = sampler.negatives(users, rng)
    train = s.matrix("train")
    assert train[users, neg].sum() == 0


def test_lightgcn_adjacency_matches_dense_formula(synth):
    s = random_split(synth)
    r = s.matrix("train").toarray()
    a = np.block([[np.zeros((s.n_users, s.n_users)), r], [r.T, np.zeros((s.n_items, s.n_items))]])
    d = a.sum(1)
    with np.errstate(divide="ignore"):
        dinv = np.where(d > 0, d ** -0.5, 0)
    expected = dinv[:, None] * a * dinv[None, :]
    got = normalized_adjacency(s).to_dense().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["mf", "lightgcn", "sasrec"])
def test_training_reduces_loss_and_is_deterministic(synth, name):
    spec = get_model(name)
    cls = spec.cls
    s = random_split(synth) if spec.protocol == "random" else leave_one_out(synth)
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        m = cls(s)
        r = fit(m, s, epochs=6, lr=1e-2, batch_size=64, seed=0, progress=False)
        results.append(evaluate(m, s, "test", groups=False))
        assert r.history[-1]["loss"] < r.history[0]["loss"]
        assert r.epochs == 6 and r.seconds_per_epoch > 0
    assert results[0] == results[1]
    scores = m.score_all(torch.arange(3), "test")
    assert scores.shape == (3, s.n_items) and torch.isfinite(scores).all()


def test_sasrec_scores_do_not_see_the_target(synth):
    s = leave_one_out(synth)
    m = SASRec(s).eval()
    before = m.score_all(torch.arange(s.n_users), "valid")
    s.valid.loc[:, "item"] = (s.valid["item"] + 1) % s.n_items  # change every valid target
    m2 = SASRec(s).eval()
    m2.load_state_dict(m.state_dict())
    assert torch.equal(before, m2.score_all(torch.arange(s.n_users), "valid"))


def test_sasrec_is_causal(synth):
    """The state at position t must not change when a later item changes."""
    s = leave_one_out(synth)
    m = SASRec(s, dropout=0.0).eval()
    seq = torch.tensor([[0, 0, 3, 5, 7, 9]])
    alt = seq.clone()
    alt[0, -1] = 11
    h1, h2 = m.encode(seq), m.encode(alt)
    assert torch.allclose(h1[:, :-1], h2[:, :-1], atol=1e-6)
    assert not torch.allclose(h1[:, -1], h2[:, -1])


def test_unknown_model_lists_valid():
    with pytest.raises(ValueError, match="valid: .*lightgcn.*sasrec"):
        get_model("bert4rec")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registry_entry_matches_the_model(name):
    """What the registry declares is what the class does: text readers take encoder/item_z, CTR models follow
    the CTR contract, sequential models the sequential split, and every default is a trainer setting."""
    import inspect

    from llmrec_lite.experiment import TRAINER_KEYS
    from llmrec_lite.models.base import CTRRecommender, SequentialRecommender

    spec = get_model(name)
    params = inspect.signature(spec.cls.__init__).parameters
    assert spec.reads_text == ("encoder" in params)
    assert (spec.task == "ctr") == issubclass(spec.cls, CTRRecommender) == (spec.protocol == "ctr")
    if issubclass(spec.cls, SequentialRecommender):
        assert spec.protocol == "loo"
    assert set(spec.defaults) <= TRAINER_KEYS


def test_register_rejects_a_ctr_model_on_a_ranking_split():
    from llmrec_lite.models import register

    with pytest.raises(ValueError, match="bad protocol/task"):
        register("bad", MF, "random", task="ctr")
    assert "bad" not in MODELS


def test_mf_beats_popularity_on_ml100k(ml100k):
    from llmrec_lite.models import Pop

    s = random_split(ml100k)
    pop = evaluate(Pop(s), s, "test", groups=False)
    m = MF(s)
    fit(m, s, epochs=15, lr=5e-3, progress=False)
    assert evaluate(m, s, "test", groups=False)["recall@20"] > pop["recall@20"]


def test_plots_draw(synth):
    import matplotlib

    matplotlib.use("Agg")
    from llmrec_lite.experiment import run
    from llmrec_lite.plots import metrics_frame, plot_curves, plot_embedding_map, plot_group_bars, plot_long_tail

    s = random_split(synth)
    assert plot_long_tail(s).axes
    recs = [run("pop", "synthetic", progress=False), run("mf", "synthetic", epochs=2, progress=False)]
    df = metrics_frame(recs, "recall@20")
    assert list(df.index) == ["pop", "mf"] and "tail_items" in df.columns
    assert len(plot_group_bars(recs).axes[0].patches) == 2 * 5
    xy = np.random.default_rng(0).normal(size=(synth.n_items, 2))
    assert plot_embedding_map(xy, [g[0] for g in synth.items.genres]).axes
    assert plot_curves({"a": [{"epoch": 1, "v": 0.1}, {"epoch": 2, "v": 0.2}]}, "v").axes[0].lines


def test_bad_trainer_and_evaluator_input(synth):
    s = random_split(synth)
    with pytest.raises(ValueError, match=r"unknown valid_metric 'mrr@10'; valid: \['recall@10'"):
        fit(MF(s), s, epochs=1, valid_metric="mrr@10", progress=False)
    s.test = s.test.iloc[:0]
    with pytest.raises(ValueError, match="no user has a test target"):
        evaluate(MF(s), s, "test")


def test_propagation_gradient_matches_dense(synth):
    from llmrec_lite.graph import propagate

    s = random_split(synth)
    adj = normalized_adjacency(s)
    x = torch.randn(adj.shape[0], 4, dtype=torch.float32, requires_grad=True)
    w = torch.randn(adj.shape[0], 4)
    (propagate(adj, x, 2) * w).sum().backward()
    dense = torch.tensor(adj.to_dense().numpy())
    x2 = x.detach().clone().requires_grad_(True)
    ((x2 + dense @ x2 + dense @ (dense @ x2)) / 3 * w).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(n for n, s in MODELS.items() if s.reads_text))
def test_every_text_model_checks_its_item_table(synth, name):
    """One text-features helper (models.base.text_features): each text-reading model refuses an item table
    whose rows do not match the catalogue, with the same message."""
    spec = get_model(name)
    s = random_split(synth) if spec.protocol == "random" else ctr_view(synth) if spec.protocol == "ctr" else leave_one_out(synth)
    z = np.random.default_rng(0).standard_normal((s.n_items - 1, 32)).astype(np.float32)
    with pytest.raises(ValueError, match=f"item embeddings have {s.n_items - 1} rows .* {s.n_items} items"):
        spec.cls(s, item_z=z)
