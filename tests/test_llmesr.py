import numpy as np
import pytest
import torch

from llmrec_lite.data import leave_one_out
from llmrec_lite.models import LLMESR
from llmrec_lite.retrieval import cached_similar_users, similar_users, user_prompts
from llmrec_lite.text import item_embeddings
from llmrec_lite.trainer import fit


@pytest.fixture(scope="module")
def setup(synth):
    s = leave_one_out(synth)
    z = item_embeddings(synth.item_texts, "random-48", seed=0)
    zu = item_embeddings(user_prompts(s), "random-24", seed=1)
    return s, z, zu


def model(setup, **kw):
    s, z, zu = setup
    torch.manual_seed(0)
    return LLMESR(s, item_z=z, user_z=zu, dim=16, max_len=20, n_similar=3, **kw)


def test_pca_initialisation_is_the_projected_lm_embeddings(setup):
    """E_0 = the centred LM vectors projected on their top-16 principal directions (computed here by SVD, not by
    the PCA the model uses), each column up to its sign; it keeps the most variance any 16-d projection can."""
    _, z, _ = setup
    m = model(setup)
    e = m.id_emb.weight[1:].detach().numpy().astype(np.float64)
    zc = z - z.mean(0)
    _, sv, vt = np.linalg.svd(zc, full_matrices=False)
    ref = zc @ vt[:16].T
    signs = np.sign((e * ref).sum(0))
    np.testing.assert_allclose(e * signs, ref, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose((e ** 2).sum(0), sv[:16] ** 2, rtol=1e-3)  # column variances = top singular values
    assert not np.allclose(model(setup, pca=False).id_emb.weight[1:].detach().numpy(), e, atol=1e-3)
    assert torch.all(m.id_emb.weight[0] == 0)  # padding row


def test_semantic_table_is_frozen_unless_asked(setup):
    s = setup[0]
    for freeze in (True, False):
        m = model(setup, freeze_semantic=freeze)
        before = m.sem_emb.weight.detach().clone()
        fit(m, s, epochs=2, lr=1e-2, batch_size=64, valid_metric="ndcg@10", progress=False)
        assert torch.equal(before, m.sem_emb.weight.detach()) == freeze


def test_retrieval_never_returns_the_user_itself():
    z = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    z[10] = z[11]  # an exact twin: it must be retrieved, oneself never
    nn_idx = similar_users(z, k=49, batch_size=7)
    assert (nn_idx != np.arange(50)[:, None]).all()
    assert nn_idx[10, 0] == 11 and nn_idx[11, 0] == 10
    assert all(len(set(r)) == 49 for r in nn_idx)
    with pytest.raises(ValueError, match="k must be"):
        similar_users(z, k=50)


def test_retrieval_is_cached(tmp_path, monkeypatch):
    import llmrec_lite.retrieval as r

    z = np.random.default_rng(0).standard_normal((30, 8)).astype(np.float32)
    a = cached_similar_users(z, 5, cache_dir=tmp_path)
    monkeypatch.setattr(r, "similar_users", lambda *a, **k: pytest.fail("recomputed"))
    np.testing.assert_array_equal(r.cached_similar_users(z, 5, cache_dir=tmp_path), a)


def test_teacher_is_the_mean_of_the_fixed_top_similar_users_and_distillation_adds_alpha_mse(setup):
    s, _, zu = setup
    m = model(setup, alpha=0.5).eval()  # eval: no dropout, so two losses can be compared exactly
    torch.testing.assert_close(m.similar, torch.from_numpy(similar_users(zu, 3)))  # the official fixed top-k
    m.refresh_bank()
    batch = next(iter(m.train_batches(32, np.random.default_rng(0))))
    users = batch[1]
    torch.testing.assert_close(m.teacher(users), m.bank[m.similar[users]].mean(1))
    torch.manual_seed(0)
    with_kd = m.loss(batch)
    m.alpha = 0.0
    torch.manual_seed(0)
    without = m.loss(batch)
    with torch.no_grad():
        h = m.encode(batch[0][:, :-1])[:, -1]
        mse = ((h - m.bank[m.similar[users]].mean(1)) ** 2).mean()
    assert with_kd.item() == pytest.approx(without.item() + 0.5 * mse.item(), rel=1e-5)
    no_kd = model(setup, distill=False)
    assert no_kd.similar is None and no_kd.cross is not None and model(setup, cross_attention=False).cross is None


def test_a_teacher_reads_the_same_sequence_as_the_student_last_state(setup):
    """Official ``_get_user_seq``: the teacher's input is its train sequence without the last item, which is
    exactly the input whose last state the student is distilled on."""
    s = setup[0]
    m = model(setup).eval()
    hist = s.histories("train")
    u = next(u for u, h in enumerate(hist) if 3 <= len(h) <= m.max_len)
    row = torch.from_numpy(np.concatenate([np.zeros(m.max_len - len(hist[u]) + 2, np.int64), hist[u] + 1]))[None]
    m.refresh_bank()
    with torch.no_grad():
        student = m.encode(row[:, :-1])[:, -1]  # a training window = the whole history; inputs drop the last
    torch.testing.assert_close(m.bank[u], student[0])
    assert (m.teacher_seq[u][m.teacher_seq[u] > 0] == torch.from_numpy(hist[u][:-1] + 1)).all()


def test_cross_attention_roles_are_the_official_llm2id_and_id2llm(setup):
    m = model(setup).eval()
    seen = {}
    for name in ("llm2id", "id2llm"):
        m.cross[name].register_forward_hook(lambda mod, args, kwargs, out, name=name: seen.update({name: (args, out)}),
                                            with_kwargs=True)
    from llmrec_lite.models.blocks import CausalEncoder

    seq = CausalEncoder.trim(m.test_seq[:4])
    with torch.no_grad():
        m.encode(seq)
        col, sem = m.id_emb(seq), m.adapter(m.sem_emb(seq))
    q, k, _ = seen["llm2id"][0]  # the semantic view queries the ID view; its output is the new ID stream
    torch.testing.assert_close(q, sem)
    torch.testing.assert_close(k, col)
    q, k, _ = seen["id2llm"][0]
    torch.testing.assert_close(q, col)
    torch.testing.assert_close(k, sem)


def test_cross_attention_is_causal(setup):
    s = setup[0]
    m = model(setup).eval()
    seq = m.test_seq[:4].clone()
    h = m.encode(seq)
    seq2 = seq.clone()
    seq2[:, -1] = (seq2[:, -1] % s.n_items) + 1  # change only the most recent item
    h2 = m.encode(seq2)
    torch.testing.assert_close(h[:, :-1], h2[:, :-1])
    assert not torch.allclose(h[:, -1], h2[:, -1])
    assert torch.isfinite(m.score_all(torch.arange(s.n_users), "test")).all()


def test_gain_plot_draws_one_bar_per_variant_and_group(setup):
    import matplotlib

    matplotlib.use("Agg")
    from llmrec_lite.explore import plot_gains

    def rec(v):
        g = {k: {"ndcg@10": v, "n_users": 1} for k in ("tail_users", "head_users", "tail_items", "head_items")}
        return {"metrics": {"ndcg@10": v, "by_group": g}}

    fig = plot_gains({"base": rec(0.1), "a": rec(0.12), "b": rec(0.05)}, "base")
    heights = sorted(round(p.get_height(), 6) for p in fig.axes[0].patches)
    assert heights == [-50.0] * 5 + [20.0] * 5


def test_each_view_scores_half_of_the_dot_product(setup):
    s = setup[0]
    m = model(setup).eval()
    users = torch.arange(s.n_users)
    with torch.no_grad():
        both, col, sem = (m.score_all(users, "test", view=v) for v in ("both", "col", "sem"))
    torch.testing.assert_close(both, col + sem)
    assert not torch.allclose(col, sem)
    with pytest.raises(ValueError, match="valid: both, col, sem"):
        m.score_all(users, "test", view="id")


def test_neighbour_overlap_measures_kept_relations():
    from llmrec_lite.explore import neighbour_overlap

    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 16))
    rotation = np.linalg.qr(rng.normal(size=(16, 16)))[0]
    assert neighbour_overlap(a, a) == 1.0
    assert neighbour_overlap(a, a @ rotation) == pytest.approx(1.0)  # cosine relations survive a rotation
    assert neighbour_overlap(a, rng.normal(size=(200, 16))) < 0.15  # chance: 10 / 199
    assert 0.15 < neighbour_overlap(a, a + rng.normal(scale=0.5, size=a.shape)) < 1.0
    with pytest.raises(ValueError, match="same rows"):
        neighbour_overlap(a, a[:10])


def test_difference_table_reads_paired_intervals(setup):
    from llmrec_lite.explore import difference_table
    from llmrec_lite.metrics import evaluate

    s = setup[0]
    m = model(setup).eval()
    res = {"full": evaluate(m, s, "test", per_user=True),
           "col": evaluate(lambda u, st: m.score_all(u, st, view="col"), s, "test", per_user=True)}
    t = difference_table(res, "full", groups=("all", "tail_users"))
    assert list(t.index) == ["col"] and list(t.columns) == ["all", "tail users"]
    diff = res["col"]["ndcg@10"] - res["full"]["ndcg@10"]
    assert t.loc["col", "all"].startswith(f"{diff:+.4f} [")
