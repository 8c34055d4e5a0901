import copy

import numpy as np
import pytest
import torch

from llmrec_lite.data import leave_one_out
from llmrec_lite.experiment import train_and_test
from llmrec_lite.models import PAD
from llmrec_lite.models.pad import popularity_bins
from llmrec_lite.text import item_embeddings


@pytest.fixture(scope="module")
def setup(synth):
    s = leave_one_out(synth)
    return s, item_embeddings(synth.item_texts, "random-32", seed=0)


def model(setup, **kw):
    s, z = setup
    torch.manual_seed(0)
    return PAD(s, item_z=z, dim=16, max_len=20, n_bins=4, **kw)


def test_popularity_bins_split_the_interaction_mass():
    pop = np.array([0, 1, 1, 2, 3, 5, 8, 13, 21, 46])
    bins = popularity_bins(pop, n_bins=4)
    assert bins[0] == 0 and (np.diff(bins) >= 0).all() and bins[-1] == 3   # unseen -> rarest, monotone
    mass = np.bincount(bins, weights=pop, minlength=4) / pop.sum()
    assert mass[-1] == pytest.approx(46 / 100)  # the top bin: the one item holding the last quarter (and more)


def test_official_gate_start_and_mixture(setup):
    m = model(setup)
    w = m.gate_weights()
    # official start (model_mmd_ada.py, gamma2 = -4): the aligned expert near 1%, IDs up and text down with popularity
    assert (w[1] < 0.015).all() and (w[1] > 0.004).all()
    assert w[0, -1] > w[0, 0] and w[2, 0] > w[2, -1]
    sig = torch.sigmoid(torch.tensor([0.75, -4.25, 0.25]))  # popular bin of 4: official index 1 -> 1/4
    torch.testing.assert_close(w[:, -1], sig / sig.sum())
    m.set_stage("disentangle").eval()
    users = torch.arange(setup[0].n_users)
    with torch.no_grad():
        mixed = m.score_all(users, "test")
        parts = [m.encode(e, m.sasrec.test_seq)[:, -1] @ m.item_table(e).T for e in ("id", "aligned", "text")]
    torch.testing.assert_close(mixed, sum(w[k, m.bins] * parts[k] for k in range(3)))
    prior = model(setup, gate_init="prior").gate_weights()
    assert prior[1].min() > 0.2  # the project's earlier prior: aligned expert at about a third


def test_aligned_item_vector_is_the_official_concat_fusion(setup):
    m = model(setup).set_stage("align").eval()
    idx = torch.tensor([0, 1, 5])
    with torch.no_grad():
        e = m.item_table("aligned", idx)
        lin = m.fuse[1]
        expect = torch.nn.functional.gelu(lin(torch.cat([m.aligned_emb(idx), m.proj["aligned"](m.z[idx])], -1)))
    torch.testing.assert_close(e[1:], expect[1:])
    assert torch.all(e[0] == 0)  # padding


def test_stage_1_is_the_project_sasrec(setup):
    """PAD's ID expert is SASRec itself: same start, same training, same validation scores."""
    s, z = setup
    kw = dict(dim=16, max_len=20, epochs=2, progress=False)
    pad, _, rec_pad = train_and_test("pad", s, item_z=z, until="pretrain", **kw)
    sas, _, rec_sas = train_and_test("sasrec", s, loss_type="bce", **kw)
    for k, v in sas.state_dict().items():
        torch.testing.assert_close(pad.sasrec.state_dict()[k], v)
    assert rec_pad["metrics"]["ndcg@10"] == rec_sas["metrics"]["ndcg@10"]


def test_alignment_starts_from_the_pretrained_ids(setup):
    m = model(setup)
    assert not torch.equal(m.aligned_emb.weight, m.sasrec.item_emb.weight)
    m.set_stage("align")
    torch.testing.assert_close(m.aligned_emb.weight, m.sasrec.item_emb.weight)
    trainable = {n.split(".")[0] for n, p in m.named_parameters() if p.requires_grad}
    assert trainable == {"aligned_emb", "fuse", "proj", "encoders"}
    assert not any(p.requires_grad for n, p in m.named_parameters() if n.startswith(("proj.text", "encoders.text")))


@pytest.mark.parametrize("freeze", [False, True])
def test_stage_3_trains_everything_unless_the_aligned_part_is_frozen(setup, monkeypatch, freeze):
    s, z = setup
    snapshots = {}
    original = PAD.set_stage

    def spy(self, stage):
        out = original(self, stage)
        if stage == "disentangle":
            snapshots.update({k: v.detach().clone() for k, v in self.state_dict().items()})
        return out

    monkeypatch.setattr(PAD, "set_stage", spy)
    m, _, rec = train_and_test("pad", s, progress=False, item_z=z, dim=16, max_len=20, n_bins=4, epochs=2,
                               freeze_aligned=freeze)
    assert [st["stage"] for st in rec["stages"]] == ["pretrain", "align", "disentangle"]
    after = m.state_dict()
    for k in snapshots:
        same = torch.equal(snapshots[k], after[k])
        if k.startswith(("aligned_emb", "proj.aligned")):
            assert same == freeze, f"{k}: frozen={freeze} but changed={not same}"
        elif k.startswith(("sasrec.item_emb", "gate", "proj.text", "fuse")):
            assert not same, f"{k} did not train in stage 3"


def test_mmd_weight_is_in_official_units(setup):
    """Official: loss + 0.2 x MMD with the five kernels summed (tllib) = 0.2 x 5 x mk_mmd (kernel mean)."""
    from llmrec_lite.losses import mk_mmd

    m = model(setup).set_stage("align")
    items = torch.arange(1, 30)
    ref = mk_mmd(m.proj["aligned"](m.z[items]), m.aligned_emb(items))
    torch.testing.assert_close(m.alignment_loss(items), 0.2 * 5 * ref)
    from llmrec_lite.losses import linear_mmd

    m.kernel = "linear"  # one kernel: weighted by mmd_weight alone
    torch.testing.assert_close(m.alignment_loss(items), 0.2 * linear_mmd(m.proj["aligned"](m.z[items]), m.aligned_emb(items)))


def test_alignment_without_bce_is_the_mmd_alone(setup):
    m = model(setup, bce_in_alignment=False, mmd_weight=2.0).set_stage("align")
    seq, users = next(m.train_batches(8, np.random.default_rng(0)))
    torch.manual_seed(1)
    loss = m.loss((seq, users))
    torch.manual_seed(1)
    neg = m.sasrec.negatives(users, seq[:, 1:].shape)
    items = torch.unique(torch.cat([seq[seq > 0], neg.flatten()]))
    torch.testing.assert_close(loss, m.alignment_loss(items))
    with_bce = model(setup, mmd_weight=2.0).set_stage("align")
    torch.manual_seed(1)
    assert with_bce.loss((seq, users)).item() > loss.item()  # + BCE (> 0)


def test_bad_settings_are_named(setup):
    with pytest.raises(ValueError, match="valid: \\['linear', 'multi', 'single'\\]"):
        model(setup, kernel="laplace")
    with pytest.raises(ValueError, match="unknown stage 'finetune'"):
        model(setup).set_stage("finetune")
    with pytest.raises(ValueError, match="unknown gate_init 'uniform'"):
        model(setup, gate_init="uniform")


def test_explorers_draw_and_stop_where_asked(setup):
    import matplotlib

    matplotlib.use("Agg")
    from llmrec_lite.explore import draw_alignment, plot_gate_weights

    s, z = setup
    seen = []
    m, _, rec = train_and_test("pad", s, progress=False, item_z=z, dim=16, max_len=20, n_bins=4, epochs=1,
                               until="align", after_stage=lambda stage, model: seen.append(stage))
    assert seen == ["pretrain", "align"] and [st["stage"] for st in rec["stages"]] == seen
    pre = model(setup)  # a fresh PAD in stage "pretrain" stands in for a pre-trained one
    fig = draw_alignment(pre, s, weight=1.0, kernel="single", epochs=1, method="pca")
    assert len(fig.axes) == 2 and "valid NDCG@10" in fig._suptitle.get_text()
    assert pre.stage == "pretrain"  # the explorer works on a copy
    pad = model(setup)
    fig = plot_gate_weights(pad)
    assert len(fig.axes[0].lines) == 3
    # a stored table's weights draw the same lines; without the items per bin: one clear error
    w = pad.gate_weights().detach().numpy()
    fig2 = plot_gate_weights(w.tolist(), bin_items=np.bincount(pad.bins.numpy(), minlength=w.shape[1]))
    for a, b in zip(fig.axes[0].lines, fig2.axes[0].lines):
        assert np.allclose(a.get_ydata(), b.get_ydata())
    with pytest.raises(ValueError, match="bin_items"):
        plot_gate_weights(w)


def test_the_gate_has_its_own_learning_rate(setup):
    """One Adam step moves each gate value by ~gate_lr, everything else by ~lr."""
    s, _ = setup
    moved = {}
    for gate_lr in (None, 0.1):
        m = model(setup, gate_lr=gate_lr).set_stage("disentangle")
        groups = m.param_groups(1e-3)
        assert [g["lr"] for g in groups] == [1e-3, gate_lr or 1e-3] and groups[1]["params"] == [m.gate]
        before = m.gate.detach().clone()
        opt = torch.optim.Adam(groups, lr=1e-3)
        m.loss(next(m.train_batches(8, np.random.default_rng(0)))).backward()
        opt.step()
        moved[gate_lr] = (m.gate - before).abs().max().item()
    assert moved[None] == pytest.approx(1e-3, rel=1e-2) and moved[0.1] == pytest.approx(0.1, rel=1e-2)


def test_refit_stage_works_on_a_copy_with_the_changed_setting(setup):
    from llmrec_lite.experiment import refit_stage

    s, z = setup
    snap = {}
    train_and_test("pad", s, progress=False, item_z=z, dim=16, max_len=20, n_bins=4, epochs=1,
                   after_stage=lambda stage, m: snap.setdefault(stage, copy.deepcopy(m)))
    aligned = snap["align"]
    before = {k: v.clone() for k, v in aligned.state_dict().items()}
    m, res = refit_stage(aligned, "pad", s, "disentangle", gate_lr=0.5, epochs=2)
    assert m.stage == "disentangle" and m.gate_lr == 0.5 and res.epochs == 2
    assert aligned.stage == "align" and all(torch.equal(before[k], v) for k, v in aligned.state_dict().items())
    assert (m.gate - aligned.gate).abs().max() > 0.4  # two Adam steps or more at 0.5
    short, _, _ = train_and_test("pad", s, progress=False, item_z=z, dim=16, max_len=20, n_bins=4, epochs=1,
                                 until="align")
    assert refit_stage(short, "pad", s, "disentangle", epochs=1)[0].stage == "disentangle"  # goes on past until
    with pytest.raises(ValueError, match="no setting 'gate_learning_rate'"):
        refit_stage(aligned, "pad", s, "disentangle", gate_learning_rate=0.5)
    one_stage, _, _ = train_and_test("sasrec", s, progress=False, epochs=1, dim=16, max_len=20)
    with pytest.raises(ValueError, match="SASRec is trained in one stage; use train_and_test"):
        refit_stage(one_stage, "sasrec", s, "disentangle")
