"""Molar: the alignment loss, what is frozen and what trains, stage 1 = the project's SASRec, the content
model alone scores at test, MIRM's prompts and fine-tuning examples come from attributes and train data only.
A tiny random llama stands in for SmolLM2 (same code path)."""
import copy

import numpy as np
import pytest
import torch

from conftest import load_script, tiny_llama
from llmrec_lite.data import leave_one_out
from llmrec_lite.experiment import train_and_test
from llmrec_lite.losses import in_batch_info_nce, symmetric_info_nce
from llmrec_lite.models.molar import Molar, item_attributes, mirm_examples
from llmrec_lite.text import item_embeddings
from llmrec_lite.text.prompts import attribute_prompt


@pytest.fixture(scope="module")
def setup(synth):
    return leave_one_out(synth), item_embeddings(synth.item_texts, "random-48", seed=0)


def small(**kw):
    return {"dim": 16, "lm": tiny_llama(), "layers": (0, 2)} | kw


def test_alignment_loss_prefers_each_users_own_id_embedding_and_grows_with_mismatch():
    g = torch.Generator().manual_seed(0)
    u_id = torch.randn(64, 16, generator=g)
    noise = torch.randn(64, 16, generator=g)
    losses = [in_batch_info_nce(u_id + s * noise, u_id).item() for s in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert losses == sorted(losses) and losses[0] < 0.1 * losses[-1]
    shuffled = in_batch_info_nce(u_id[torch.randperm(64, generator=g)], u_id).item()
    assert shuffled > losses[2] > losses[0]
    # hand-computed: two orthogonal pairs, tau 1 -> -log(e / (e + 1))
    a = torch.eye(2)
    assert in_batch_info_nce(a, a, tau=1.0).item() == pytest.approx(-np.log(np.e / (np.e + 1)), rel=1e-6)


def test_symmetric_alignment_loss_by_hand_and_under_swapping():
    """Molar's Eq. 4: the two directions added. Two users, tau = 1: a = (1, 0), (0, 1); b = (1, 0), (1, 1)/sqrt 2.
    cos(a_i, b_j) = [[1, r], [0, r]] with r = 1/sqrt 2, so
      a -> b: [-log(e / (e + e^r)) - log(e^r / (1 + e^r))] / 2
      b -> a: [-log(e / (e + 1)) - log(1/2)] / 2   (b_2 is as close to a_1 as to a_2)"""
    a, b = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    r, e = 1 / np.sqrt(2), np.e
    a_to_b = (-np.log(e / (e + e ** r)) - np.log(e ** r / (1 + e ** r))) / 2
    b_to_a = (-np.log(e / (e + 1)) - np.log(0.5)) / 2
    assert in_batch_info_nce(a, b, tau=1.0).item() == pytest.approx(a_to_b, rel=1e-6)
    assert symmetric_info_nce(a, b, tau=1.0).item() == pytest.approx(a_to_b + b_to_a, rel=1e-6)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 8, generator=g), torch.randn(32, 8, generator=g)
    assert symmetric_info_nce(x, y, 0.1).item() == pytest.approx(symmetric_info_nce(y, x, 0.1).item(), rel=1e-6)
    assert in_batch_info_nce(x, y, 0.1).item() != pytest.approx(in_batch_info_nce(y, x, 0.1).item(), rel=1e-3)
    # with b frozen (a teacher), the b -> a direction still trains a
    x.requires_grad_(True)
    in_batch_info_nce(y, x, 0.1).backward()
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("fusion", ["none", "early", "post"])
def test_what_trains_in_each_fusion(setup, fusion):
    s, z = setup
    torch.manual_seed(0)
    m = Molar(s, item_z=z, fusion=fusion, **small())
    assert (m.id_emb is not None) == (fusion == "early") and (m.sasrec is not None) == (fusion == "post")
    m.set_stage("content").train()
    batch = next(m.train_batches(32, np.random.default_rng(0)))
    m.loss(batch).backward()
    grads = {n for n, p in m.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert not any(n.startswith("sasrec.") for n in grads)  # the ID model is a frozen teacher
    assert any(n.startswith("id_emb") for n in grads) == (fusion == "early")  # no ID table outside early fusion
    assert {"w_in.weight", "w_u.weight", "w_v.weight"} <= grads and any(n.startswith("dueg.layers.0.") for n in grads)
    if fusion == "post":
        assert not m.sasrec.training  # no dropout in the teacher while the content model trains


def test_alignment_pulls_on_the_content_model_only_and_its_weight_counts(setup):
    s, z = setup
    torch.manual_seed(0)
    m = Molar(s, item_z=z, **small(dropout=0.0)).set_stage("content")
    m.eval()
    batch = next(m.train_batches(32, np.random.default_rng(0)))
    torch.manual_seed(1)
    with torch.no_grad():
        base = copy.deepcopy(m)
        base.align_weight = 0.0
        torch.manual_seed(1)
        l0 = base.loss(batch)
        torch.manual_seed(1)
        l1 = m.loss(batch)
        seq = batch[0][:, :-1]
        align = symmetric_info_nce(m.encode(seq)[:, -1], m.sasrec.encode(seq)[:, -1], m.tau)
    assert l1.item() == pytest.approx(l0.item() + m.align_weight * align.item(), rel=1e-5)


def test_stage_one_is_the_projects_sasrec_and_the_content_stage_leaves_it_unchanged(setup):
    s, z = setup
    snap = {}
    _, _, rec = train_and_test("molar", s, progress=False, epochs=2, item_z=z, **small(),
                               after_stage=lambda stage, m: snap.setdefault(stage, copy.deepcopy(m.sasrec.state_dict())))
    sas, _, _ = train_and_test("sasrec", s, progress=False, epochs=2, dim=16, max_len=20, loss_type="bce")
    for k, v in sas.state_dict().items():   # the same window as DUEG's (max_len 20)
        assert torch.equal(snap["id"][k], v), k
    for k, v in snap["id"].items():
        assert torch.equal(snap["content"][k], v)
    assert [st["stage"] for st in rec["stages"]] == ["id", "content"]


def test_content_model_alone_scores_at_test(setup):
    s, z = setup
    torch.manual_seed(0)
    m = Molar(s, item_z=z, **small()).set_stage("content").eval()
    users = torch.arange(20)
    with torch.no_grad():
        before = m.score_all(users, "test")
        for p in m.sasrec.parameters():
            p.add_(torch.randn_like(p))
        assert torch.equal(before, m.score_all(users, "test"))


def test_length_buckets_keep_one_window_per_user_per_epoch(setup):
    s, z = setup
    m = Molar(s, item_z=z, fusion="none", **small()).set_stage("content")
    batches = list(m.train_batches(16, np.random.default_rng(0)))
    users = torch.cat([u for _, u in batches]).sort().values
    assert torch.equal(users, m.hist_users.sort().values)
    spread = [int((w > 0).sum(1).max() - (w > 0).sum(1).min()) for w, _ in batches]
    free = [int((w > 0).sum(1).max() - (w > 0).sum(1).min()) for w, _ in Molar.__mro__[1].train_batches(m, 16, np.random.default_rng(0))]
    assert np.mean(spread) < np.mean(free)  # similar lengths per batch: less padding for the LM layers


def test_attribute_prompts(synth):
    assert attribute_prompt({"Title": "Staples", "Brand": "", "Category": ["Fasteners", "Staples"], "Year": None}) == \
        "Title: Staples\nCategory: Fasteners > Staples"
    assert attribute_prompt({"Title": "X"}, image="<image>").splitlines() == ["<image>", "Title: X"]
    a = item_attributes(synth, "all")[0]
    assert attribute_prompt(a) == f"Title: {synth.items.title[0]}\nYear: {synth.items.year[0]}\nGenres: {', '.join(synth.items.genres[0])}"
    assert attribute_prompt(item_attributes(synth, "title")[0]) == f"Title: {synth.items.title[0]}"
    with pytest.raises(ValueError, match="unknown fields 'images'; valid"):
        item_attributes(synth, "images")


def test_mirm_examples_use_descriptions_and_train_sequences_only(synth):
    ds = copy.copy(synth)
    ds.items = synth.items.assign(description=[f"about {t}" if i % 3 else "" for i, t in enumerate(synth.items.title)])
    s = leave_one_out(ds)
    ex = mirm_examples(s, n_per_task=12, seed=0)
    desc = [(p, a) for p, a in ex if p.endswith("Description:")]
    seq = [(p, a) for p, a in ex if p.endswith("Their next item:")]
    assert len(desc) == 12 and len(seq) == 12
    assert all(a.startswith(" about ") and "Description: about" not in p for p, a in desc)  # no answer in the prompt
    titles = ds.items.title.tolist()
    index = {t: i for i, t in enumerate(titles)}
    hist = s.histories("train")
    for p, a in seq:
        ctx = [index[line[2:]] for line in p.splitlines()[1:-1]]
        chain = ctx + [index[a[1:]]]
        assert any(any(list(h[k:k + len(chain)]) == chain for k in range(len(h))) for h in hist)  # train order only


def test_a_fitted_id_model_replaces_stage_one(setup):
    s, z = setup
    sas, _, _ = train_and_test("sasrec", s, progress=False, epochs=1, dim=16, loss_type="bce")
    m = Molar(s, item_z=z, id_model=sas, **small())
    assert m.stages == ("content",) and m.sasrec is not sas
    assert all(torch.equal(a, b) for a, b in zip(m.sasrec.state_dict().values(), sas.state_dict().values()))
    with pytest.raises(ValueError, match="id_model: a SASRec fitted on this split with dim=8"):
        Molar(s, item_z=z, id_model=sas, **small(dim=8))


def test_post_alignment_brings_each_content_embedding_to_its_own_id_embedding(setup):
    import matplotlib

    matplotlib.use("Agg")
    from llmrec_lite.explore import alignment_cosines, draw_molar_alignment
    from llmrec_lite.explore.molar import user_pairs

    s, z = setup
    sas, _, _ = train_and_test("sasrec", s, progress=False, epochs=5, dim=16, loss_type="bce")
    kw = dict(dim=16, lm=tiny_llama(), layers=(0, 2), patience=100, batch_size=16, restore_best=False)
    users = torch.arange(s.n_users)
    out, models = {}, {}
    for w in (0.0, 5.0):
        m, _, _ = train_and_test("molar", s, progress=False, item_z=z, id_model=sas, align_weight=w, epochs=60, **kw)
        models[w] = m.eval()
        with torch.no_grad():
            content, ids = m.user_embeddings(users, "test")
            out[w] = (in_batch_info_nce(content, ids, m.tau).item(), alignment_cosines(m, sas, s))
    (l0, c0), (l5, c5) = out[0.0], out[5.0]
    assert l5 < l0 - 0.5  # the alignment loss over all users, the quantity post-alignment lowers
    assert c5["own"].mean() - c5["other"].mean() > c0["own"].mean() - c0["other"].mean() + 0.02
    content, ids = user_pairs(models[5.0], sas, s, n_users=None)  # the map's points: the cosines' pairs
    np.testing.assert_allclose(np.linalg.norm(content, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose((content * ids).sum(1), alignment_cosines(models[5.0], sas, s, n_users=None)["own"], atol=1e-5)
    fig, rec = draw_molar_alignment(s, z, sas, align_weight=5.0, tau=0.1, epochs=2, before=models[0.0], **kw)
    assert rec["metrics"] == train_and_test("molar", s, progress=False, item_z=z, id_model=sas, align_weight=5.0,
                                            epochs=2, **kw)[2]["metrics"]  # the explorer trains what it says
    assert fig.axes[0].get_xlabel().startswith("cos(content user embedding")
    assert fig.axes[1].get_title().startswith("before alignment") and fig.axes[2].get_title().startswith("after: lambda=5")


def test_scores_in_length_chunks_equal_one_padded_batch(setup):
    s, z = setup
    torch.manual_seed(0)
    m = Molar(s, item_z=z, fusion="none", **small()).set_stage("content").eval()
    seq = m.test_seq[torch.arange(s.n_users)]
    with torch.no_grad():
        torch.testing.assert_close(m.last_state(seq, chunk=7), m.encode(seq)[:, -1], atol=1e-5, rtol=1e-4)


def test_amazon_and_movielens_attribute_prompts(scientific, ml100k):
    amazon = attribute_prompt(item_attributes(scientific)[1]).splitlines()
    assert amazon[:3] == ["Title: Stanley TRA708T Sharpshooter 1/2-Inch Leg Length Staples, Steel (1000 Count)",
                          "Brand: Stanley", "Category: Fasteners > Collated Fasteners > Staples"]
    assert amazon[3].startswith("Description: Heavy-duty staples are ideal") and len(amazon[3]) == len("Description: ") + 300
    assert attribute_prompt(item_attributes(ml100k)[1]) == "Title: GoldenEye\nYear: 1995\nGenres: Action, Adventure, Thriller"
    assert attribute_prompt(item_attributes(scientific, "title")[1]).count("\n") == 0


def test_building_molar_leaves_the_shared_language_model_untouched(setup):
    from conftest import make_tiny_llama

    s, z = setup
    pair = make_tiny_llama()
    before = {n: (p.requires_grad, p.detach().clone()) for n, p in pair[1].named_parameters()}
    m = Molar(s, item_z=z, fusion="none", dim=16, lm=pair, layers=(0, 2))
    assert all(p.requires_grad for p in m.dueg.parameters())  # DUEG's own copy trains
    for n, p in pair[1].named_parameters():
        assert p.requires_grad == before[n][0] and torch.equal(p, before[n][1])
    assert not any(p is q for p in m.parameters() for q in pair[1].parameters())


def test_molar_sweep_table_differences_from_the_start_row_and_stored_rows_are_current():
    sweep = load_script("benchmarks/molar_sweep.py", "molar_sweep")
    row = lambda s, v: {"setting": s, "best_valid": v, "best_epoch": 3, "epochs": 8, "seconds_per_epoch": 2.0}
    lines = sweep.table([row("lm_lr=1e-3", 0.045), row("other", 0.01), row(sweep.START, 0.04)]).splitlines()[2:]
    assert [ln.split(" | ")[0] for ln in lines] == [f"| {sweep.START}", "| lm_lr=1e-3", "| other"]  # SETTINGS order
    assert lines[0].split(" | ")[2] == "" and lines[1].split(" | ")[2] == "+0.0050"  # hand-computed
    with pytest.raises(SystemExit, match="unknown setting"):
        sweep.settings("bogus")
    # every committed row is the setting the script would train now (else it would be re-run, or be stale)
    from llmrec_lite import evidence

    saved = [r["row"] for r in evidence.rows("molar_sweep")]
    assert {r["setting"] for r in saved} == set(sweep.SETTINGS)
    assert all(r["overrides"] == sweep.settings(r["setting"]) for r in saved)


def test_paper_prompt_fits_and_always_ends_at_the_cur_item_position():
    """MIRM's paper pooling reads the hidden state at [Cur_Item]: the instruction prompt must end there for every
    item, however long its attributes (they are cut in tokens, the instruction and the end are kept)."""
    from conftest import make_tiny_llama
    from llmrec_lite.models.molar import CUR_ITEM, mirm_vectors, paper_prompts

    short, long = "Title: Toy Story", "Title: Heat\nDescription: " + " ".join(["a long plot line"] * 40)
    head = "Compress the text into embedding. Item information: "
    tok, _ = make_tiny_llama([short, long, head, f". {CUR_ITEM}"])
    out = paper_prompts([short, long], tok, max_length=48)
    assert all(p.startswith(head) and p.endswith(f". {CUR_ITEM}") for p in out)
    assert all(len(tok(p)["input_ids"]) <= 48 for p in out)
    assert "Toy Story" in out[0] and len(out[1]) < len(head + long)          # the short one whole, the long one cut
    with pytest.raises(ValueError, match="max_length=12 leaves no room"):
        paper_prompts([short], tok, max_length=12)
    with pytest.raises(ValueError, match="unknown MIRM pooling 'first'"):
        mirm_vectors(None, pooling="first")


def test_mirm_finetune_runs_the_fine_tune_with_the_rows_seed_and_reads_its_vectors(setup, monkeypatch):
    """mirm_finetune=True: MIRM's fine-tune runs with the run's seed and its model makes the item vectors (the flag
    once shadowed the function it names)."""
    from llmrec_lite.text import mirm

    split, z = setup
    calls = []
    monkeypatch.setattr(mirm, "mirm_finetune", lambda s, enc, seed: calls.append(("finetune", enc, seed)) or "FT")
    monkeypatch.setattr(mirm, "mirm_vectors", lambda s, enc, fields, ft, pooling, **kw:
                        calls.append(("vectors", ft, pooling)) or z)
    Molar(split, **small(mirm_finetune=True, seed=7))
    assert calls == [("finetune", "smollm2", 7), ("vectors", "FT", "mean")]
    calls.clear()
    Molar(split, **small(seed=7, mirm_pooling="last"))
    assert calls == [("vectors", None, "last")]


def test_warmup_cosine_schedule_by_hand_and_only_in_the_content_stage(setup):
    s, z = setup
    m = Molar(s, item_z=z, schedule="warmup-cosine", schedule_epochs=40, **small())  # warm-up: 2 epochs (5%)
    assert m.lr_factor(3) == 1.0  # stage "id" (the teacher, = the standalone SASRec) is never scheduled
    m.set_stage("content")
    got = [m.lr_factor(e) for e in (1, 2, 3, 21, 40, 60)]
    want = [0.5, 1.0, 0.5 * (1 + np.cos(np.pi / 38)), 0.5 * (1 + np.cos(np.pi * 19 / 38)), 0.0, 0.0]
    assert got == pytest.approx(want, abs=1e-12)
    assert Molar(s, item_z=z, **small()).set_stage("content").lr_factor(7) == 1.0  # default: constant
    with pytest.raises(ValueError, match="valid schedules"):
        Molar(s, item_z=z, schedule="cosine", **small())


def test_trainer_applies_the_models_schedule_to_every_parameter_group(setup):
    s, z = setup
    _, res, rec = train_and_test("molar", s, progress=False, epochs=3, patience=5, item_z=z, fusion="none",
                                 schedule="warmup-cosine", schedule_epochs=4, **small())
    assert [r["lr_factor"] for r in res.history] == pytest.approx([1.0, 0.5 * (1 + np.cos(np.pi / 3)),
                                                                  0.5 * (1 + np.cos(np.pi * 2 / 3))])
    assert rec["hyperparameters"]["schedule"] == "warmup-cosine"


def test_user_token_state_is_the_user_and_trains_on_the_last_target(setup):
    s, z = setup
    torch.manual_seed(0)
    m = Molar(s, item_z=z, user_token=True, **small(dropout=0.0)).set_stage("content").eval()
    seq = m.test_seq[:8]
    with torch.no_grad():
        u = m.encode(seq)
        assert u.shape == (8, 1, 16)
        assert torch.allclose(m.user_embeddings(torch.arange(8))[0], u[:, 0], atol=1e-5)
        moved = m.user_tok.clone()
        m.user_tok.add_(1.0)
        assert not torch.allclose(m.encode(seq), u)  # the score reads [User]'s state
        m.user_tok.copy_(moved)
    m.train()
    batch = next(m.train_batches(16, np.random.default_rng(0)))
    m.loss(batch).backward()
    assert m.user_tok.grad is not None and m.user_tok.grad.abs().sum() > 0
    assert Molar(s, item_z=z, **small()).user_tok is None
