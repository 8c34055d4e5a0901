"""LLM-CF: retrieval by hand (label balance, never the query's own user, order), the ICT sequence and its
reconstruction positions, causality, CoT on/off, the wrappers are their backbones plus w, no leakage from the
query's own rows; the offline half: prompts, RecGen's mix, keyword checks, the pool's cache and JSONL."""
import json

import numpy as np
import pytest
import torch

from conftest import make_tiny_llama
from llmrec_lite.data import ctr_view, leave_one_out
from llmrec_lite.experiment import run, train_and_test
from llmrec_lite.models import LLMCFDIN, LLMCFSASRec, SASRec, resolve_alias
from llmrec_lite.models.base import ctr_batch
from llmrec_lite.models.llmcf import InContext
from llmrec_lite.models.llmcf_offline import (CoTPool, build_pool, cot_prompt, general_ability, item_names,
                                              rec_ability, rec_prompt, recgen_examples, sample_rows)
from llmrec_lite.text.general_instructions import GENERAL_EVAL, GENERAL_TRAIN, keyword_hit


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def setup(synth):
    view = ctr_view(synth, max_history=6)
    rows = sample_rows(view, 80, seed=0)
    rows["prompt"], rows["cot"] = "p", "c"
    g = np.random.default_rng(0)
    pool = CoTPool(rows, unit(g.standard_normal((len(rows), 16))))
    item_z = unit(g.standard_normal((synth.n_items, 8)))
    return view, pool, item_z


def ctx_for(view, pool, item_z, **kw):
    torch.manual_seed(0)
    return InContext(view, pool, 16, item_z=item_z, **kw).eval()


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_retrieval_by_hand(setup, similarity):
    view, pool, item_z = setup
    ctx = ctx_for(view, pool, item_z, similarity=similarity)
    a = view.arrays("valid")
    users, hist, item = (torch.tensor(a[k][:10]) for k in ("user", "hist", "item"))
    idx = ctx.retrieve(users, ctx.mean_text(hist), item)
    z = np.vstack([np.zeros((1, 8), np.float32), item_z])
    p = pool.arrays(6)
    p_hist = np.stack([z[h[h > 0]].mean(0) if (h > 0).any() else np.zeros(8, np.float32) for h in p["hist"]])
    unit_or_not = (lambda x: x) if similarity == "dot" else \
        (lambda x: x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12))  # cosine: directions only
    for r in range(10):
        qh = z[a["hist"][r][a["hist"][r] > 0]].mean(0)
        s = 0.5 * unit_or_not(p_hist) @ unit_or_not(qh) + 0.5 * z[p["item"] + 1] @ z[a["item"][r] + 1]
        s[p["user"] == a["user"][r]] = -np.inf  # never the query's own user
        best = [np.argsort(-np.where(p["label"] == y, s, -np.inf), kind="stable")[:2] for y in (1, 0)]
        got = idx[r].tolist()
        assert sorted(got) == sorted(np.concatenate(best).tolist())
        assert list(np.argsort(s[got], kind="stable")) == [0, 1, 2, 3]  # least similar first
        assert sorted(p["label"][got].tolist()) == [0, 0, 1, 1]
        assert not (p["user"][got] == a["user"][r]).any()


def test_a_short_history_is_a_hub_under_dot_only(setup):
    view, pool, item_z = setup
    ctx = ctx_for(view, pool, item_z, similarity="cosine")
    # a hub: pool row 5's mean history vector is long (one item) and 60 degrees off the query, row 7's is short
    # (many varied items) and points exactly at it. "dot" (official) picks the hub, "cosine" the aligned row.
    e = np.linalg.qr(np.random.default_rng(1).standard_normal((8, 2)))[0].T.astype(np.float32)  # orthonormal
    q = torch.tensor(e[:1])
    for c, best in ((ctx_for(view, pool, item_z), 5), (ctx, 7)):
        c.p_hist_text[:] = 0.1 * torch.tensor(e[1])
        c.p_hist_text[5] = torch.tensor(0.5 * e[0] + 0.866 * e[1])
        c.p_hist_text[7] = 0.3 * q[0]
        s = c.history_scores(q)[0]
        assert s.argmax() == best, c.similarity
    assert torch.isclose(ctx.history_scores(q)[0, 7], torch.tensor(1.0))
    with pytest.raises(ValueError, match="unknown similarity"):
        ctx_for(view, pool, item_z, similarity="l2")


@pytest.mark.parametrize("k", [1, 2, 3, 8])
def test_random_retrieval_varies_per_row_keeps_balance_and_excludes_the_user(setup, k):
    view, pool, item_z = setup
    ctx = ctx_for(view, pool, item_z, retrieval="random", k=k)
    users = torch.arange(view.n_users)
    for mode in ("train", "eval"):
        getattr(ctx, mode)()
        idx = ctx.retrieve(users, torch.zeros(len(users), 8), None)
        lab, own = ctx.p_label[idx], ctx.p_user[idx] == users[:, None]
        assert idx.shape == (len(users), k) and not own.any()     # never the query's own user's rows
        assert (lab.sum(1) == (k + 1) // 2).all()                 # the label balance of similar retrieval
    # evaluation: one fixed draw per user (one query each); training: drawn afresh for every query row, so rows
    # of the same user do not share one set of examples (which would act as a user ID)
    assert torch.equal(idx, ctx.retrieve(users, torch.randn(len(users), 8), None))
    ctx.train()
    same_user = torch.zeros(50, dtype=torch.long)
    rows = ctx.retrieve(same_user, torch.zeros(50, 8), None)
    assert len({tuple(r.tolist()) for r in rows}) > 25 and not (ctx.p_user[rows] == 0).any()
    # the pool holds train rows only: no validation or test target can be retrieved
    train_pairs = set(zip(view.part("train")["user"], view.part("train")["item"]))
    assert all((int(u), int(i)) in train_pairs for u, i in zip(ctx.p_user[rows].flatten(), ctx.p_item[rows].flatten()))


def test_pool_too_small_is_a_clear_error(setup):
    view, pool, item_z = setup
    with pytest.raises(ValueError, match="too few rows"):
        ctx_for(view, pool, item_z, k=200)
    with pytest.raises(ValueError, match="retrieval"):
        ctx_for(view, pool, item_z, retrieval="nearest")
    with pytest.raises(ValueError, match="label 0"):
        CoTPool(pool.rows[pool.rows["label"] == 1], pool.cot_z[pool.rows["label"].to_numpy() == 1])


def test_ict_sequence_causality_cot_and_reconstruction_positions(setup):
    view, pool, item_z = setup
    a = ctr_batch(view.arrays("valid"), np.arange(6), "cpu")
    for cot in (True, False):
        ctx = ctx_for(view, pool, item_z, cot=cot)
        state, item_vec = torch.randn(6, 16), torch.randn(6, 16)
        pool_state = lambda h: torch.tanh(h.float().sum(1, keepdim=True)).expand(-1, 16)
        pool_item = lambda i: torch.sin(i.float())[:, None].expand(-1, 16)
        args = (a["user"], state, ctx.mean_text(a["hist"]), a["item"], item_vec, pool_state, pool_item)
        captured = {}
        hook = ctx.decoder.register_forward_hook(lambda m, i, kw, o: captured.update(seq=kw["inputs_embeds"], h=o.last_hidden_state),
                                                 with_kwargs=True)
        w, recon, idx = ctx(*args)
        hook.remove()
        per = 3 if cot else 2
        assert captured["seq"].shape == (6, 4 * per + 1, 16) and torch.equal(w, captured["h"][:, -1])
        if cot:  # 1 - cos at the feature tokens 0, 3, 6, 9 against the retrieved rows' CoT vectors
            manual = 1 - torch.nn.functional.cosine_similarity(ctx.reconstruct(captured["h"][:, [0, 3, 6, 9]]),
                                                              ctx.p_cot[idx], dim=-1).mean()
            assert torch.allclose(recon, manual, atol=1e-6)
        else:
            assert recon.item() == 0
        before = captured["h"][:, :-1].clone()
        w2, _, _ = ctx(a["user"], state + 1, *args[2:])  # a different query token
        hook = ctx.decoder.register_forward_hook(lambda m, i, kw, o: captured.update(h=o.last_hidden_state), with_kwargs=True)
        ctx(a["user"], state + 1, *args[2:])
        hook.remove()
        assert torch.allclose(captured["h"][:, :-1], before, atol=1e-6) and not torch.allclose(w, w2)  # causal
        old = ctx.p_cot.clone()
        ctx.p_cot.copy_(torch.from_numpy(unit(np.random.default_rng(1).standard_normal(tuple(old.shape)))))
        w3, _, _ = ctx(*args)
        ctx.p_cot.copy_(old)
        assert torch.allclose(w, w3, atol=1e-6) != cot  # the CoT vectors matter only with cot=True


def test_k0_control_reads_the_query_token_alone_and_rejects_bad_k(setup):
    view, pool, item_z = setup
    a = ctr_batch(view.arrays("valid"), np.arange(6), "cpu")
    ctx = ctx_for(view, pool, item_z, k=0)
    state, item_vec = torch.randn(6, 16), torch.randn(6, 16)
    args = (a["user"], state, ctx.mean_text(a["hist"]), a["item"], item_vec, None, None)  # pool towers never called
    captured = {}
    hook = ctx.decoder.register_forward_hook(lambda m, i, kw, o: captured.update(seq=kw["inputs_embeds"]), with_kwargs=True)
    w, recon, idx = ctx(*args)
    hook.remove()
    assert captured["seq"].shape == (6, 1, 16) and idx.shape == (6, 0) and recon.item() == 0
    q = ctx.tokens(a["user"], state, ctx.mean_text(a["hist"]), item_vec, ctx.item_text[a["item"] + 1])
    assert torch.allclose(w, ctx.decoder(inputs_embeds=q[:, None]).last_hidden_state[:, 0], atol=1e-6)
    ctx.p_label.fill_(0)  # the pool is never read
    assert torch.allclose(ctx(*args)[0], w)
    for bad in (-1, 2.0):
        with pytest.raises(ValueError, match="k is the number"):
            ctx_for(view, pool, item_z, k=bad)


def test_sasrec_wrapper_is_sasrec_plus_w_and_ignores_the_users_own_pool_rows(setup, synth):
    _, pool, item_z = setup
    split = leave_one_out(synth)
    torch.manual_seed(3)
    m = LLMCFSASRec(split, pool=pool, item_z=item_z, fusion=0.0).eval()
    base = SASRec(split, max_len=20)   # LLM-CF reads the pool rows' 20-item window
    base.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("ctx.")})
    base.eval()
    users = torch.arange(split.n_users)
    with torch.no_grad():
        assert torch.allclose(m.score_all(users, "test"), base.score_all(users, "test"), atol=1e-5)
        m.fusion = 0.1
        s = m.score_all(users, "test")
        assert not torch.allclose(s, base.score_all(users, "test"))
        m.ctx.p_cot[m.ctx.p_user == 0] = 0.0  # user 0's own pool rows are never read for user 0
        m.ctx.p_label[m.ctx.p_user == 0] = 1 - m.ctx.p_label[m.ctx.p_user == 0]
        assert torch.allclose(m.score_all(users[:1], "test"), s[:1], atol=1e-6)
    m.train()
    batch = next(m.train_batches(16, np.random.default_rng(0)))
    loss = m.loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and m.ctx.decoder.layers[0].self_attn.q_proj.weight.grad is not None
    assert m.last_retrieved.shape[1] == 4
    # ict_share: the picked positions are fused, the others are SASRec's h alone
    m.ict_share, m.recon_weight = 0.5, 0.0
    torch.manual_seed(5)
    loss = m.loss(batch)
    n_valid = int((batch[0][:, 1:] > 0).sum())
    assert 0 < len(m.last_retrieved) < n_valid  # only a share went through the ICT
    torch.manual_seed(5)
    m.fusion = 0.0  # the same picks, w weighted 0: SASRec's own loss
    assert not torch.allclose(loss, m.loss(batch))
    m.eval()  # no dropout: the two losses draw different random numbers
    assert torch.allclose(m.loss(batch), SASRec.loss(m, batch), atol=1e-5)
    with pytest.raises(ValueError, match="ict_share"):
        LLMCFSASRec(split, pool=pool, item_z=item_z, ict_share=0.0)


def test_din_wrapper_trains_with_reconstruction(setup):
    view, pool, item_z = setup
    torch.manual_seed(0)
    m = LLMCFDIN(view, pool=pool, item_z=item_z)
    b = ctr_batch(view.arrays("train"), np.arange(32), "cpu")
    m.train()
    loss = m.loss(b)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(m.predict(b), b["label"])
    assert torch.allclose(loss, bce + m._recon, atol=1e-6) and m._recon > 0
    m.recon_weight = 0.0
    assert torch.allclose(m.loss(b), torch.nn.functional.binary_cross_entropy_with_logits(m.predict(b), b["label"]))
    assert m.dnn[1].in_features == 4 * 32  # [v_u; e_t; v_u * e_t; w]


def test_both_backbones_train_and_test(setup, synth):
    view, pool, item_z = setup
    for name, split in (("llmcf-din", view), ("llmcf-sasrec", leave_one_out(synth))):
        _, res, rec = train_and_test(name, split, progress=False, pool=pool, item_z=item_z, epochs=1, batch_size=64)
        assert rec["model"] == name and "CoTPool(80 rows" in rec["hyperparameters"]["pool"]
        json.dumps(rec)


def test_alias_and_clear_errors():
    s = {"backbone": "din", "k": 2}
    assert resolve_alias("llmcf", s) == "llmcf-din" and s == {"k": 2}
    assert resolve_alias("llmcf", {}) == "llmcf-sasrec"
    assert resolve_alias("din", {"backbone": "x"}) == "din"
    with pytest.raises(ValueError, match="backbone"):
        resolve_alias("llmcf", {"backbone": "gru4rec"})
    with pytest.raises(ValueError, match="backbone"):
        run("llmcf", "synthetic", backbone="gru4rec")


# ---- offline half ----

def test_prompts_by_hand(synth):
    names = item_names(synth)
    assert names[0] == "Space Story 0 (2000)"
    p = rec_prompt(names, [0, 1], [1, 0], 2)
    assert "- Space Story 0 (2000) (liked)\n- Heart Story 1 (2001) (not liked)" in p and p.endswith("Answer Yes or No.")
    assert "the user did not like the target movie" in cot_prompt(names, [0], [1], 2, 0)
    assert "the user liked the target movie" in cot_prompt(names, [], [], 2, 1)
    assert "- (none yet)" in cot_prompt(names, [], [], 2, 1)
    p = rec_prompt(names, list(range(15)), [1] * 15, 20, max_items=10)
    assert p.count("\n- ") == 10 and "first:\n- Love Adventure 5 (2005)" in p  # the last 10 only


def test_recgen_mix_uses_train_rows_only(synth):
    view = ctr_view(synth, max_history=6)
    tok = make_tiny_llama()[0]
    rec = recgen_examples(view, tok, n_rec=30, mix="rec")
    mixed = recgen_examples(view, tok, n_rec=30, mix="mixed", general_share=0.5)
    assert len(rec) == 30 and {a for _, a in rec} <= {"Yes", "No"}
    general = [e for e in mixed if e[1] not in ("Yes", "No")]
    assert len(general) == len(GENERAL_TRAIN) and len(mixed) == 30 + len(GENERAL_TRAIN)
    assert not {q for q, _, _ in GENERAL_EVAL} & {p for p, _ in mixed}  # held-out instructions never trained on
    names = item_names(synth)
    train_prompts = {rec_prompt(names, h, hl, i) for h, hl, i in zip(view.train["history"], view.train["history_label"], view.train["item"])}
    # a tokenizer without a chat template: system prompt, blank line, the prompt
    assert all(p.split("\n\n", 1)[1].rstrip("\n") in train_prompts for p, a in rec)
    with pytest.raises(ValueError, match="mix"):
        recgen_examples(view, tok, mix="both")


def test_keyword_hit():
    assert keyword_hit("It is Paris.", (("paris",),))
    assert keyword_hit("There are 7 days", (("seven", "7"),)) and not keyword_hit("70 days", (("7",),))
    assert keyword_hit("Mix the ingredients", (("ingredient",),)) and not keyword_hit("a mice", (("ice",),))
    assert len(GENERAL_TRAIN) == 32 and len(GENERAL_EVAL) == 16
    assert all(keyword_hit(a, k) for _, a, k in GENERAL_TRAIN + GENERAL_EVAL)  # every reference answer passes


def test_pool_is_cached_and_written_as_jsonl(synth, tmp_path, monkeypatch):
    from llmrec_lite.text import models

    view = ctr_view(synth, max_history=6)
    tiny = make_tiny_llama(synth.item_texts)
    kw = dict(n=12, lm=tiny, identity="tiny-test", max_new_tokens=4, batch_size=4, cache_dir=tmp_path, progress=False)
    pool = build_pool(view, **kw)
    assert len(pool.rows) == 12 and pool.cot_z.shape == (12, 384)
    np.testing.assert_allclose(np.linalg.norm(pool.cot_z, axis=1), 1, rtol=1e-5)
    lines = [json.loads(x) for x in open(pool.path, encoding="utf-8")]
    assert [l["cot"] for l in lines] == list(pool.rows["cot"]) and lines[0]["prompt"].startswith("A user rated")

    def boom(*a, **k):
        raise AssertionError("an LLM was called although everything was cached")

    monkeypatch.setattr(models, "load", boom)
    monkeypatch.setattr(tiny[1], "generate", boom)
    again = build_pool(view, **kw)
    np.testing.assert_array_equal(again.cot_z, pool.cot_z)
    assert list(again.rows["cot"]) == list(pool.rows["cot"])


def test_abilities_run_on_a_tiny_llama(synth):
    view = ctr_view(synth, max_history=6)
    tiny = make_tiny_llama(synth.item_texts + [a for _, a, _ in GENERAL_EVAL])
    r = rec_ability(tiny, view, n=20)
    assert 0 <= r["auc"] <= 1 and 0 < r["p_yes_positives"] < 1 and r["rows"] == 20
    g = general_ability(tiny, max_new_tokens=3)
    assert g["perplexity"] > 1 and 0 <= g["keyword_accuracy"] <= 1 and len(g["answers"]) == 16


def test_user_example_ranks_with_and_without_w(setup, synth):
    from llmrec_lite.explore import user_example

    _, pool, item_z = setup
    split = leave_one_out(synth)
    torch.manual_seed(0)
    m = LLMCFSASRec(split, pool=pool, item_z=item_z)
    u = int(split.test["user"].iloc[0])
    ex = user_example(m, pool, split, u)
    t = int(split.test.set_index("user")["item"][u])
    m.eval()
    with torch.no_grad():
        s = m.score_all(torch.tensor([u]), "test")[0].numpy()
    s[split.seen("test")[u].indices] = -np.inf
    assert ex["ranks"]["with ICT"] == int((s > s[t]).sum()) + 1 and m.fusion == 0.1  # fusion restored
    assert len(ex["examples"]) == 4 and set(ex["examples"]["liked"]) == {0, 1}
    with pytest.raises(ValueError, match="no test item"):
        user_example(m, pool, split, 10_000)


def test_feature_pool_has_no_reasoning_and_serves_cot_false_only(setup):
    from llmrec_lite.models.llmcf_offline import feature_pool

    view, pool, item_z = setup
    big = feature_pool(view, n=len(view.train) // 2, seed=1)
    assert len(big.rows) == len(view.train) // 2 and not big.has_cot and pool.has_cot
    assert set(map(tuple, big.rows[["user", "item"]].to_numpy())) <= set(map(tuple, view.train[["user", "item"]].to_numpy()))
    with pytest.raises(ValueError, match="cot=False"):
        ctx_for(view, big, item_z)
    ctx = ctx_for(view, big, item_z, cot=False)
    a = ctr_batch(view.arrays("valid"), np.arange(5), "cpu")
    idx = ctx.retrieve(a["user"], ctx.mean_text(a["hist"]), a["item"])
    assert idx.shape == (5, 4) and not (ctx.p_user[idx] == a["user"][:, None]).any()


def test_ctr_user_example_compares_with_the_backbone(setup):
    from llmrec_lite.explore import ctr_user_example
    from llmrec_lite.models import DIN

    view, pool, item_z = setup
    torch.manual_seed(0)
    m, din = LLMCFDIN(view, pool=pool, item_z=item_z).eval(), DIN(view).eval()
    u = int(view.test["user"].iloc[0])
    ex = ctr_user_example(m, din, pool, view, u, row=0)
    rows = np.flatnonzero(view.arrays("test")["user"] == u)
    assert len(ex["rows"]) == len(rows) and len(ex["examples"]) == 4
    b = ctr_batch(view.arrays("test"), rows, "cpu")
    with torch.no_grad():
        assert np.allclose(ex["rows"]["p + ICT"], torch.sigmoid(m.predict(b)).numpy().round(3))
        assert np.allclose(ex["rows"]["p backbone"], torch.sigmoid(din.predict(b)).numpy().round(3))
    got = ex["rows"]["moved toward the label"].to_numpy()
    want = np.where(ex["rows"]["liked"] == 1, ex["rows"]["p + ICT"] > ex["rows"]["p backbone"],
                    ex["rows"]["p + ICT"] < ex["rows"]["p backbone"])
    assert (got == want).all()
    assert (pool.rows.iloc[m.last_retrieved[0].numpy()]["user"] != u).all()
    with pytest.raises(ValueError, match="no test rows"):
        ctr_user_example(m, din, pool, view, 10_000)


def test_without_the_ict_user_embedding_the_tokens_carry_no_user_identity(setup):
    """ict_user=False: the feature token F has no e_u, so two users with the same history, state and target get the
    same token (the backbone SASRec has no user input either); with it, they differ."""
    view, pool, item_z = setup
    for ict_user, differ in ((True, True), (False, False)):
        ctx = ctx_for(view, pool, item_z, ict_user=ict_user)
        state, text, vec = torch.randn(1, 16).repeat(2, 1), torch.randn(1, 8).repeat(2, 1), torch.randn(1, 16).repeat(2, 1)
        tok = ctx.tokens(torch.tensor([0, 1]), state, text, vec, text)
        assert (not torch.allclose(tok[0], tok[1])) == differ
        assert (ctx.user_emb is not None) == ict_user


def test_a_resumable_pool_is_its_finished_rows_and_grows_without_redoing_them(synth, tmp_path, monkeypatch):
    """rows_path: a cut-off generation leaves a pool of the rows it finished (a seeded random subset of the sample);
    the next call generates only the rest; the prompt carries the official fourth point (variety)."""
    view = ctr_view(synth, max_history=6)
    tiny = make_tiny_llama(synth.item_texts)
    kw = dict(n=12, lm=tiny, identity="tiny-test", max_new_tokens=4, batch_size=4, cache_dir=tmp_path, progress=False,
              rows_path=tmp_path / "pool.jsonl")
    part = build_pool(view, limit=5, **kw)
    assert len(part.rows) == 5 and len(open(kw["rows_path"]).read().splitlines()) == 5
    assert all("variety" in p for p in part.rows["prompt"])
    calls = []
    real = tiny[1].generate
    monkeypatch.setattr(tiny[1], "generate", lambda **k: calls.append(len(k["input_ids"])) or real(**k))
    whole = build_pool(view, **kw)
    assert len(whole.rows) == 12 and sum(calls) == 7                      # only the seven missing rows
    keep = whole.rows.set_index(["user", "item"])["cot"]
    assert all(keep[(u, i)] == c for u, i, c in zip(part.rows["user"], part.rows["item"], part.rows["cot"]))
