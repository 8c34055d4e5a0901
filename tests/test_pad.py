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


def test_gate_weights_sum_to_one_and_depend_on_frequency(setup):
    m = model(setup)
    w = m.gate_weights()
    torch.testing.assert_close(w.sum(0), torch.ones(w.shape[1]))
    assert w[0, -1] > w[0, 0] and w[2, 0] > w[2, -1]  # popular bins lean on IDs, rare bins on text
    m.set_stage("disentangle").eval()
    users = torch.arange(setup[0].n_users)
    with torch.no_grad():
        mixed = m.score_all(users, "test")
        parts = [m.encode(e, m.test_seq)[:, -1] @ m.item_table(e).T for e in ("id", "aligned", "text")]
    torch.testing.assert_close(mixed, sum(w[k, m.bins] * parts[k] for k in range(3)))


def test_alignment_starts_from_the_pretrained_ids(setup):
    m = model(setup)
    assert not torch.equal(m.tables["aligned"].weight, m.tables["id"].weight)
    m.set_stage("align")
    torch.testing.assert_close(m.tables["aligned"].weight, m.tables["id"].weight)
    trainable = {n.split(".")[0] + "." + n.split(".")[1] for n, p in m.named_parameters() if p.requires_grad}
    assert trainable == {"tables.aligned", "proj.aligned", "encoders.aligned"}


def test_three_stages_train_and_the_aligned_tables_stay_frozen_in_stage_3(setup, monkeypatch):
    s, z = setup
    snapshots = {}
    original = PAD.set_stage

    def spy(self, stage):
        out = original(self, stage)
        if stage == "disentangle":
            snapshots.update({k: v.detach().clone() for k, v in self.state_dict().items()})
        return out

    monkeypatch.setattr(PAD, "set_stage", spy)
    m, _, rec = train_and_test("pad", s, progress=False, item_z=z, dim=16, max_len=20, n_bins=4, epochs=2)
    assert [st["stage"] for st in rec["stages"]] == ["pretrain", "align", "disentangle"]
    after = m.state_dict()
    for k in snapshots:
        same = torch.equal(snapshots[k], after[k])
        if k.startswith(("tables.aligned", "proj.aligned")):
            assert same, f"{k} changed in stage 3"
        elif k.startswith(("tables.id", "gate", "proj.text")):
            assert not same, f"{k} did not train in stage 3"


def test_alignment_without_bce_is_the_mmd_alone(setup):
    m = model(setup, bce_in_alignment=False, mmd_weight=2.0).set_stage("align")
    seq = next(m.train_batches(8, np.random.default_rng(0)))
    torch.manual_seed(1)
    loss = m.loss(seq)
    torch.manual_seed(1)
    neg = torch.randint(1, m.n_items + 1, seq[:, 1:].shape)
    items = torch.unique(torch.cat([seq[seq > 0], neg.flatten()]))
    torch.testing.assert_close(loss, 2.0 * m.alignment_loss(items))


def test_bad_settings_are_named(setup):
    with pytest.raises(ValueError, match="valid: \\['linear', 'multi', 'single'\\]"):
        model(setup, kernel="laplace")
    with pytest.raises(ValueError, match="unknown stage 'finetune'"):
        model(setup).set_stage("finetune")


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
    fig = plot_gate_weights(model(setup))
    assert len(fig.axes[0].lines) == 3


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
