"""LLM plumbing for Molar / BAHE / LLM-CF: decoder layers as modules over vectors, LoRA fine-tuning (cached).
A tiny random llama (same code path as SmolLM2) keeps these fast; the SmolLM2 check is marked slow."""
import pytest
import torch

from llmrec_lite.text.finetune import answer_labels, finetune
from llmrec_lite.text.layers import DecoderSlice, causal_padding_mask

from conftest import TINY_WORDS as WORDS


def test_slices_over_token_embeddings_equal_the_full_model(tiny):
    tok, lm = tiny
    ids = torch.randint(3, len(WORDS) + 3, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, :3] = 0  # left padding
    with torch.no_grad():
        hidden = lm(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        low, up = DecoderSlice(lm, 0, 2), DecoderSlice(lm, 2, 4, final_norm=True)
        h2 = low(low.embed(ids), mask)
        real = mask.bool()
        torch.testing.assert_close(h2[real], hidden[2][real], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(up(h2, mask)[real], hidden[4][real], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(DecoderSlice(lm, 0, 4, final_norm=True)(low.embed(ids), mask)[real],
                                   hidden[4][real], atol=1e-5, rtol=1e-5)


def test_slice_is_causal_and_freezing_is_per_slice(tiny):
    _, lm = tiny
    low, up = DecoderSlice(lm, 0, 2), DecoderSlice(lm, 2, 4, trainable=True)
    assert not any(p.requires_grad for p in low.parameters() if p is not low.embed_tokens.weight)
    assert all(p.requires_grad for p in up.layers.parameters())
    x = torch.randn(1, 5, 32)
    y = x.clone()
    y[0, -1] += 1.0
    with torch.no_grad():
        a, b = up(x), up(y)
    assert torch.allclose(a[:, :-1], b[:, :-1], atol=1e-6) and not torch.allclose(a[:, -1], b[:, -1])
    with pytest.raises(ValueError, match="out of range: the model has 4 decoder layers"):
        DecoderSlice(lm, 2, 9)


def test_padding_mask_never_leaves_a_row_empty():
    m = causal_padding_mask(torch.tensor([[0, 0, 1, 1]]), torch.float32)[0, 0]
    assert (m.max(-1).values == 0).all()  # every query row sees something
    assert m[3, 0] < -1e30 and m[3, 2] == 0 and m[2, 3] < -1e30


def test_answer_labels_mask_the_prompt_and_padding(tiny):
    tok, _ = tiny
    enc = answer_labels(tok, ["the movie is", "a film about space love"], ["good", "yes"], max_length=32)
    assert enc["labels"][0].tolist() == [-100, -100, -100, tok.convert_tokens_to_ids("good"), 2, -100, -100]
    assert enc["labels"][1].tolist()[-2:] == [tok.convert_tokens_to_ids("yes"), 2]
    assert enc["attention_mask"][0].tolist() == [1, 1, 1, 1, 1, 0, 0]


def test_lora_lowers_the_loss_keeps_the_base_and_is_cached(tiny, tmp_path):
    tok, lm = tiny
    base = {k: v.clone() for k, v in lm.state_dict().items()}
    examples = [("the movie is", "good"), ("the film is", "bad"), ("a movie about space", "yes"),
                ("a film about war", "no")] * 4
    ft = finetune((tok, lm), examples, epochs=8, lr=2e-2, batch_size=4, rank=4, progress=False,
                  identity="tiny-llama", cache_dir=tmp_path)
    assert not ft.cached and len(ft.losses) == 32
    assert sum(ft.losses[-4:]) < 0.2 * sum(ft.losses[:4])
    assert all(torch.equal(base[k], v) for k, v in lm.state_dict().items())  # the caller's model is untouched
    trainable = [n for n, p in ft.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    again = finetune((tok, lm), examples, epochs=8, lr=2e-2, batch_size=4, rank=4, progress=False,
                     identity="tiny-llama", cache_dir=tmp_path)
    assert again.cached and again.path == ft.path
    ids = answer_labels(tok, ["the movie is"], ["good"], 16)["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(again.model(input_ids=ids).logits, ft.model(input_ids=ids).logits)
    other = finetune((tok, lm), examples[:4], epochs=1, rank=4, progress=False, identity="tiny-llama", cache_dir=tmp_path)
    assert not other.cached and other.path != ft.path  # other examples: another adapter


def test_finetune_errors_are_clear(tiny):
    with pytest.raises(ValueError, match="identity"):
        finetune(tiny, [("a", "b")], progress=False)
    with pytest.raises(ValueError, match="at least one"):
        finetune(tiny, [], cache=False)
    with pytest.raises(ValueError, match=r"\(prompt, answer\) pairs"):
        finetune(tiny, ["just text"], cache=False)


@pytest.mark.slow
def test_smollm2_slices_match_its_hidden_states():
    from llmrec_lite.text.layers import load_decoder

    tok, lm = load_decoder("smollm2", fresh=False)
    enc = tok(["Title: Heat (1995)", "Toy Story"], return_tensors="pt", padding=True)
    with torch.no_grad():
        hidden = lm(**enc, output_hidden_states=True).hidden_states
        low = DecoderSlice(lm, 0, 10)
        h = DecoderSlice(lm, 10, 30, final_norm=True)(low(low.embed(enc["input_ids"]), enc["attention_mask"]),
                                                      enc["attention_mask"])
    real = enc["attention_mask"].bool()
    assert len(lm.model.layers) == 30
    torch.testing.assert_close(h[real], hidden[30][real], atol=1e-3, rtol=1e-3)


def test_encoding_with_a_given_model_runs_only_the_layers_it_needs(tiny, tmp_path, request):
    from llmrec_lite.text.encode import encode_variants, pool

    tok, lm = tiny
    texts = ["the movie is good", "a bad film about war", "love"]
    enc = tok(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        hidden = lm(**enc, output_hidden_states=True).hidden_states
    calls = []
    hooks = [layer.register_forward_hook(lambda *a: calls.append(1)) for layer in lm.model.layers]
    request.addfinalizer(lambda: [h.remove() for h in hooks])
    got = encode_variants(texts, variants=[("mean", 1), ("last", 2)], lm=tiny, identity="tiny-llama",
                          cache_dir=tmp_path, progress=False)
    assert len(calls) == 3  # layers 0..2 of 4, one batch: hidden_states[2] is the input of layer 2
    for (p, l), v in got.items():
        want = torch.nn.functional.normalize(pool(hidden[l], enc["attention_mask"], p), dim=-1)
        torch.testing.assert_close(torch.from_numpy(v), want, atol=1e-5, rtol=1e-5)
    assert len(lm.model.layers) == 4  # restored
    calls.clear()
    again = encode_variants(texts, variants=[("mean", 1)], lm=tiny, identity="tiny-llama", cache_dir=tmp_path, progress=False)
    assert calls == [] and (again[("mean", 1)] == got[("mean", 1)]).all()  # cache hit, keyed by identity
    encode_variants(texts, variants=[("mean", -1)], lm=tiny, identity="tiny-llama", cache_dir=tmp_path, progress=False)
    assert len(calls) == 4  # the last layer needs them all
    with pytest.raises(ValueError, match="identity"):
        encode_variants(texts, lm=tiny, cache_dir=tmp_path)


def test_generation_with_a_given_model_is_plain_text_and_cached_by_identity(tiny, tmp_path):
    from llmrec_lite.text.generate import generate

    tok, lm = tiny
    prompts = ["the movie is", "a film about space"]
    out = generate(prompts, lm=tiny, identity="tiny-llama", chat=False, max_new_tokens=3, cache_dir=tmp_path, progress=False)
    tok.padding_side = "left"
    with torch.no_grad():
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        want = lm.generate(**enc, max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out == [t.strip() for t in tok.batch_decode(want[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)]
    files = list((tmp_path / "generations").rglob("*.json"))
    assert len(files) == 1
    import json

    saved = json.loads(files[0].read_text())
    saved["outputs"][0] = "CACHED"
    files[0].write_text(json.dumps(saved))
    again = generate(prompts, lm=tiny, identity="tiny-llama", chat=False, max_new_tokens=3, cache_dir=tmp_path, progress=False)
    assert again == ["CACHED", out[1]]  # read back from the cache, not regenerated
    with pytest.raises(ValueError, match="identity"):
        generate(prompts, lm=tiny, cache_dir=tmp_path)


def test_encoding_a_middle_layer_first_leaves_every_layer_readable(tmp_path):
    """transformers installs its hidden-state hooks at the first call: running only some layers at that first call
    must not leave the others unhooked (wrong or missing hidden states for every later request)."""
    from conftest import make_tiny_llama
    from llmrec_lite.text.encode import encode_variants, pool

    texts = ["the movie is good", "a bad film about war"]
    fresh, reference = make_tiny_llama(), make_tiny_llama()
    tok, lm = reference
    enc = tok(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        hidden = lm(**enc, output_hidden_states=True).hidden_states
    for layer in (1, 2, 3, -1):  # first call: layers 0..1 only
        got = encode_variants(texts, variants=[("mean", layer)], lm=fresh, identity="fresh", cache_dir=tmp_path,
                              progress=False)[("mean", layer)]
        want = torch.nn.functional.normalize(pool(hidden[layer], enc["attention_mask"], "mean"), dim=-1)
        torch.testing.assert_close(torch.from_numpy(got), want, atol=1e-5, rtol=1e-5)
    assert fresh[1].config.num_hidden_layers == 4
