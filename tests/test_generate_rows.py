"""Per-row resumable generation (text.generate.generate_rows): one JSONL line per finished prompt, a cut-off run
keeps its rows and the next one generates only the rest, in a seeded order; an unfinished last line is skipped."""
import json

import pytest

from conftest import make_tiny_llama
from llmrec_lite.text.generate import generate_rows, read_rows

PROMPTS = [f"movie {w} is good" for w in ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")]


@pytest.fixture(scope="module")
def lm():
    return make_tiny_llama(PROMPTS + ["yes no because"])


class Counting:
    """The tiny llama, counting the rows it is asked to generate."""

    def __init__(self, model):
        self.model, self.rows = model, 0

    def generate(self, **kw):
        self.rows += len(kw["input_ids"])
        return self.model.generate(**kw)

    def parameters(self):
        return self.model.parameters()


def run(lm, path, **kw):
    tok, model = lm
    counting = Counting(model)
    out = generate_rows(PROMPTS, path, lm=(tok, counting), identity="tiny", chat=False, max_new_tokens=3,
                        batch_size=3, progress=False, **kw)
    return out, counting.rows


def test_a_cut_off_run_keeps_its_rows_and_the_next_generates_only_the_rest(lm, tmp_path):
    path = tmp_path / "cot.jsonl"
    first, n1 = run(lm, path, limit=4, extra=[{"row": i} for i in range(len(PROMPTS))])
    assert n1 == 4 and sum(o is not None for o in first) == 4
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) == 4 and {ln["row"] for ln in lines} == {i for i, o in enumerate(first) if o is not None}
    second, n2 = run(lm, path)
    assert n2 == 6 and None not in second                       # only the six missing rows were generated
    assert [second[i] for i in range(10) if first[i] is not None] == [o for o in first if o is not None]
    third, n3 = run(lm, path)
    assert n3 == 0 and third == second                           # everything read back
    whole, _ = run(lm, tmp_path / "whole.jsonl")                 # the same outputs as one uninterrupted run
    assert whole == second


def test_the_order_is_seeded_so_any_prefix_is_a_random_sample(lm, tmp_path):
    a, _ = run(lm, tmp_path / "a.jsonl", limit=3, seed=1)
    b, _ = run(lm, tmp_path / "b.jsonl", limit=3, seed=1)
    c, _ = run(lm, tmp_path / "c.jsonl", limit=3, seed=2)
    done = lambda out: {i for i, o in enumerate(out) if o is not None}
    assert done(a) == done(b) and done(a) != done(c) and done(a) != {0, 1, 2}


def test_an_unfinished_last_line_is_skipped_in_one_line_and_generated_again(lm, tmp_path, capsys):
    path = tmp_path / "cot.jsonl"
    run(lm, path, limit=2)
    with open(path, "a") as f:
        f.write('{"key": "abc", "outp')                         # the write a cut-off left half done
    assert len(read_rows(path)) == 2
    assert "1 unfinished line(s) skipped" in capsys.readouterr().out
    out, n = run(lm, path)
    assert n == 8 and None not in out


def test_a_changed_setting_is_a_different_row(lm, tmp_path):
    path = tmp_path / "cot.jsonl"
    run(lm, path)
    tok, model = lm
    out = generate_rows(PROMPTS[:2], path, lm=(tok, model), identity="tiny", chat=False, max_new_tokens=4,
                        progress=False)
    assert len(read_rows(path)) == 12                            # max_new_tokens 4 is not the 3-token row
    assert None not in out
