import hashlib
import json
import zipfile

import numpy as np
import pytest

from llmrec_lite.data import DataError, load_amazon2023, load_dataset, synthetic_dataset
from llmrec_lite.data import movielens
from llmrec_lite.data.movielens import clean_title, load_ml100k, load_ml1m


def test_ml100k_counts_and_stats(ml100k):
    assert (ml100k.n_users, ml100k.n_items, ml100k.n_interactions) == (943, 1682, 100000)
    s = ml100k.stats()
    assert s["density"] == pytest.approx(100000 / (943 * 1682))
    inter = ml100k.interactions
    assert inter["user"].max() == 942 and inter["item"].max() == 1681  # contiguous ids
    assert set(inter["rating"].unique()) == {1, 2, 3, 4, 5}
    toy = ml100k.items.iloc[0]
    assert (toy.title, toy.year, toy.genres) == ("Toy Story", 1995, ["Animation", "Children's", "Comedy"])
    assert toy.text == "Toy Story (1995). Genres: Animation, Children's, Comedy."
    # time order within each user
    assert (inter.groupby("user")["timestamp"].diff().dropna() >= 0).all()


def test_pantry_counts_and_order(pantry):
    assert (pantry.n_users, pantry.n_items, pantry.n_interactions) == (12871, 8347, 115004)
    first = pantry.interactions[pantry.interactions.user == 0]
    assert first["timestamp"].tolist() == list(range(len(first)))
    raw = pantry.items.loc[first["item"], "raw_id"].tolist()
    assert raw == ["B00099XNXS", "B00UBJQHMU", "B018JPHSTI", "B00UFUZTQK", "B016F7ELKG"]
    assert all(isinstance(t, str) and t for t in pantry.item_texts[:50])


def test_filters(ml100k):
    pos = ml100k.implicit(4)
    assert pos.n_interactions == int((ml100k.interactions.rating >= 4).sum()) == 55375
    core = ml100k.k_core(30)
    assert core.interactions.groupby("user").size().min() >= 30
    assert core.interactions.groupby("item").size().min() >= 30
    assert core.interactions["item"].max() == core.n_items - 1
    assert "30-core" in core.describe()


def test_sample_users_keeps_whole_histories(ml100k):
    from llmrec_lite.data.dataset import DataError

    small = ml100k.sample_users(100, seed=1)
    assert small.n_users == 100 and small.n_items == small.interactions["item"].nunique()
    sizes = small.interactions.groupby("user").size().to_numpy()
    titles = small.items.title.to_numpy()[small.interactions.item.to_numpy()]
    first = small.interactions[small.interactions.user == 0]
    # every kept user keeps all of their ratings, in time order, with the same titles
    matches = [u for u in range(ml100k.n_users)
               if len(h := ml100k.interactions[ml100k.interactions.user == u]) == len(first)
               and (ml100k.items.title.to_numpy()[h.item.to_numpy()] == titles[:len(first)]).all()]
    assert len(matches) == 1 and sizes.sum() == small.n_interactions
    assert ml100k.sample_users(100, seed=1).interactions.equals(small.interactions)  # deterministic
    assert ml100k.sample_users(ml100k.n_users) is ml100k
    with pytest.raises(DataError, match="sample_users: n must be between 1 and 943"):
        ml100k.sample_users(0)


@pytest.mark.parametrize("raw,expected", [
    ("Usual Suspects, The (1995)", ("The Usual Suspects", 1995)),
    ("Seven (Se7en) (1995)", ("Seven (Se7en)", 1995)),
    ("unknown", ("unknown", None)),
])
def test_clean_title(raw, expected):
    assert clean_title(raw) == expected


# ------------------------------------------------------------ small fixtures in the official formats
def write_ml100k(folder, bad_line=None):
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["1\t1\t5\t881250949", "1\t2\t3\t881250950", "2\t1\t4\t881250951", "2\t2\t2\t881250952"]
    if bad_line:
        lines[2] = bad_line
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    flags = "|".join(["0"] * 19)
    item = ("1|Cité des enfants perdus, La (1995)|01-Jan-1995||http://x|" + flags + "\n"
            "2|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|" + "|".join(["0"] * 13) + "\n")
    (folder / "u.item").write_bytes(item.encode("latin-1"))
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    (folder / "u.genre").write_text("unknown|0\n")


def test_latin1_titles_decoded(tmp_path):
    write_ml100k(tmp_path / "ml-100k")
    ds = load_ml100k(tmp_path)
    assert ds.items.title.tolist() == ["La Cité des enfants perdus", "Toy Story"]
    assert ds.items.genres[1] == ["Animation", "Children's", "Comedy"]


def test_corrupt_udata_names_file_and_line(tmp_path):
    write_ml100k(tmp_path / "ml-100k", bad_line="2\t1\t4")
    with pytest.raises(DataError, match=r"u\.data, line 3: expected 4 fields"):
        load_ml100k(tmp_path)
    write_ml100k(tmp_path / "ml-100k", bad_line="2\tx\t4\t881250951")
    with pytest.raises(DataError, match=r"u\.data, line 3: column 'item_raw' is not a number"):
        load_ml100k(tmp_path)


def _no_network(monkeypatch, name="ml-100k"):
    url, md5, member, files = movielens.SOURCES[name]
    monkeypatch.setitem(movielens.SOURCES, name, ("file:///nonexistent/x.zip", md5, member, files))


def test_missing_data_dir_clear_error(tmp_path, monkeypatch):
    _no_network(monkeypatch)
    with pytest.raises(DataError) as e:
        load_dataset("ml-100k", root=tmp_path / "nowhere")
    msg = str(e.value)
    assert "LLMREC_DATA_DIR" in msg and "u.data" in msg and str(tmp_path / "nowhere" / "ml-100k") in msg


def test_download_verifies_checksum_and_extracts(tmp_path, monkeypatch):
    src = tmp_path / "src"
    write_ml100k(src / "ml-100k")
    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in (src / "ml-100k").iterdir():
            zf.write(f, f"ml-100k/{f.name}")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    files = movielens.SOURCES["ml-100k"][3]
    root = tmp_path / "root"
    monkeypatch.setitem(movielens.SOURCES, "ml-100k", (archive.as_uri(), "0" * 32, "ml-100k", files))
    with pytest.raises(DataError, match="checksum mismatch"):
        load_ml100k(root)
    assert not (root / "ml-100k").exists() and not list(root.glob("*.zip"))  # nothing half-written
    monkeypatch.setitem(movielens.SOURCES, "ml-100k", (archive.as_uri(), md5, "ml-100k", files))
    ds = load_ml100k(root)
    assert ds.n_interactions == 4 and (root / "ml-100k" / "u.data").is_file()
    assert not list(root.glob(".*"))  # temporary files cleaned up


def test_ml1m_official_format(tmp_path):
    d = tmp_path / "ml-1m"
    d.mkdir()
    (d / "ratings.dat").write_text("1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n")
    (d / "movies.dat").write_bytes("10::GoldenEye (1995)::Action|Adventure|Thriller\n"
                                   "20::Misérables, Les (1995)::Drama|Musical\n".encode("latin-1"))
    (d / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    ds = load_ml1m(tmp_path)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 2, 3)
    assert ds.items.title.tolist() == ["GoldenEye", "Les Misérables"]
    assert ds.items.genres[1] == ["Drama", "Musical"]


def test_amazon2023_format(tmp_path):
    csv = tmp_path / "All_Beauty.csv"
    csv.write_text("user_id,parent_asin,rating,timestamp\nU1,A1,5.0,1588687728923\nU1,A2,4.0,1588687729923\n"
                   "U2,A1,3.0,1588615855070\n")
    meta = tmp_path / "meta_All_Beauty.jsonl"
    rows = [{"parent_asin": "A1", "title": "Rose Face Oil", "categories": ["Beauty", "Skin Care"],
             "description": ["Light oil.", "For dry skin."]},
            {"parent_asin": "A2", "title": "Hair Brush", "categories": [], "description": []},
            {"parent_asin": "A9", "title": "unused", "categories": [], "description": []}]
    meta.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ds = load_amazon2023(csv, meta)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 2, 3)
    assert ds.items.text[0] == "Rose Face Oil. Genres: Beauty, Skin Care. Light oil. For dry skin."
    meta.write_text(json.dumps(rows[0]) + "\n{broken\n")
    with pytest.raises(DataError, match="line 2: not valid JSON"):
        load_amazon2023(csv, meta)


def test_unknown_dataset_lists_valid():
    with pytest.raises(ValueError, match="valid: .*ml-100k"):
        load_dataset("ml-42")


def test_synthetic_is_deterministic():
    a, b = synthetic_dataset(seed=3), synthetic_dataset(seed=3)
    assert a.interactions.equals(b.interactions)
    assert np.isin(["Space", "Love"], " ".join(a.items.title).split()).all()


def test_ml1m_from_recbole_atomic_files_pinned(ml1m):
    assert (ml1m.n_users, ml1m.n_items, ml1m.n_interactions) == (6040, 3706, 1000209)
    toy = ml1m.items[ml1m.items.raw_id == "Toy Story (1995)"].iloc[0]
    assert toy.title == "Toy Story" and toy.year == 1995 and toy.genres == ["Animation", "Children's", "Comedy"]
    usual = ml1m.items[ml1m.items.raw_id == "Usual Suspects, The (1995)"].iloc[0]
    assert usual.title == "The Usual Suspects"  # the article moved back, as for ml-100k
    assert ml1m.interactions.rating.between(1, 5).all() and {"age", "gender"} <= set(ml1m.users.columns)
    first = ml1m.interactions[ml1m.interactions.user == 0]
    assert first.timestamp.is_monotonic_increasing


def test_amazon_scientific_pinned_with_attributes(scientific):
    assert (scientific.n_users, scientific.n_items, scientific.n_interactions) == (8317, 4344, 58492)
    assert {"brand", "categories", "description"} <= set(scientific.items.columns)
    it = scientific.items.iloc[0]
    assert it.categories[0] == "Industrial & Scientific" and it.genres == it.categories[1:]
    assert f"Brand: {it.brand.rstrip('.')}." in it.text and it.text.startswith(it.title)
    assert (scientific.items.description == "").sum() == 123
    assert scientific.interactions.groupby("user").size().min() == 5


def test_recbole_atomic_reader_names_bad_lines(tmp_path):
    from llmrec_lite.data import DataError, load_recbole_atomic, read_atomic

    d = tmp_path / "toy"
    d.mkdir()
    (d / "toy.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                 "u1\ta\t5\t2\nu1\tb\t3\t1\nu2\ta\t4\t7\n")
    (d / "toy.item").write_text("item_id:token\tmovie_title:token\trelease_year:float\tgenre:token_seq\n"
                                "a\tMatrix, The\t1999\tAction Sci-Fi\nb\tHeat\t1995\tCrime\n")
    ds = load_recbole_atomic(d)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (2, 2, 3)
    assert ds.items.set_index("raw_id").loc["a", "title"] == "The Matrix"
    assert ds.items.set_index("raw_id").loc["a", "genres"] == ["Action", "Sci-Fi"]
    u1 = ds.interactions[ds.interactions.user == 0]
    assert ds.items.raw_id[u1.item.iloc[0]] == "b"  # ordered by timestamp
    (d / "toy.inter").write_text("user_id:token\titem_id:token\trating:float\nu1\ta\tfive\n")
    with pytest.raises(DataError, match="toy.inter, line 2: field 'rating' is not a number"):
        read_atomic(d / "toy.inter")
    (d / "toy.inter").write_text("user_id\titem_id\n")
    with pytest.raises(DataError, match="header field 'user_id' is not name:type"):
        read_atomic(d / "toy.inter")
