"""drain3 miner: masking, fit/save/load round trip, and matching that never learns."""

from __future__ import annotations

import json

import pyarrow as pa

from pipelines.templates.miner import UNSEEN_ID, LogTemplateMiner, TemplateMatcher

UNSEEN = "brand new event from R02-M1-N0-C:J12-U11 at 10.1.2.3:8080 addr 0xdeadbeef blk_-42 code 1234"


def test_masking_of_unseen_content(bgl_miner: LogTemplateMiner):
    template_id, masked = bgl_miner.match(UNSEEN)
    assert template_id == UNSEEN_ID
    assert masked == "brand new event from <NODE> at <IP> addr <HEX> <BLK> code <NUM>"


def test_fit_covers_every_line_it_learned(bgl_lines: list[dict], bgl_miner: LogTemplateMiner):
    assert 50 < bgl_miner.n_templates < 200
    assert all(line["template_id"] != UNSEEN_ID for line in bgl_lines)
    assert "instruction cache parity error corrected" in bgl_miner.templates().values()


def test_numbers_are_masked_in_templates(bgl_miner: LogTemplateMiner):
    template_id, template = bgl_miner.match("63543 double-hummer alignment exceptions")
    assert template_id != UNSEEN_ID
    assert template == "<NUM> double-hummer alignment exceptions"


def test_match_is_frozen(bgl_miner: LogTemplateMiner):
    before, count = bgl_miner.state_bytes(), bgl_miner.n_templates
    assert bgl_miner.match(UNSEEN)[0] == UNSEEN_ID
    assert bgl_miner.match(UNSEEN)[0] == UNSEEN_ID  # a second sighting is still unseen: nothing was learned
    assert bgl_miner.match("instruction cache parity error corrected")[0] != UNSEEN_ID
    assert (bgl_miner.state_bytes(), bgl_miner.n_templates) == (before, count)


def test_save_load_round_trip_gives_an_identical_matcher(tmp_path, bgl_lines: list[dict], bgl_miner: LogTemplateMiner):
    path = bgl_miner.save(tmp_path / "sub" / "miner_state.json")
    payload = json.loads(path.read_text())
    assert payload["n_templates"] == bgl_miner.n_templates
    assert payload["settings"]["masking"][0][0] == "NODE"
    loaded = LogTemplateMiner.load(path)
    assert loaded.templates() == bgl_miner.templates()
    assert loaded.settings == bgl_miner.settings
    probes = [line["content"] for line in bgl_lines] + [UNSEEN, "", "data TLB error interrupt now"]
    assert [loaded.match(text) for text in probes] == [bgl_miner.match(text) for text in probes]
    assert loaded.state_bytes() == bgl_miner.state_bytes()


def test_load_uses_the_masking_stored_in_the_file(tmp_path):
    custom = LogTemplateMiner.fit(["user alice logged in", "user bob logged in"])
    custom_masking = LogTemplateMiner.fit(["user alice logged in"], masking=[("USER", r"(?<=user )\w+")])
    path = custom_masking.save(tmp_path / "m.json")
    loaded = LogTemplateMiner.load(path)
    assert loaded.match("user carol logged in") == custom_masking.match("user carol logged in")
    assert loaded.match("user carol logged in")[1] == "user <USER> logged in"
    assert custom.match("user carol logged in")[1] == "user <*> logged in"


def test_template_matcher_adds_columns(tmp_path, bgl_miner: LogTemplateMiner):
    path = bgl_miner.save(tmp_path / "miner_state.json")
    batch = pa.table({"content": ["data TLB error interrupt", UNSEEN], "offset": [0, 10]})
    out = TemplateMatcher(str(path))(batch)
    assert out.column_names == ["content", "offset", "template_id", "template"]
    ids = out.column("template_id").to_pylist()
    assert ids[0] == bgl_miner.match("data TLB error interrupt")[0] and ids[1] == UNSEEN_ID
    assert out.column("template").to_pylist()[0] == "data TLB error interrupt"


def test_template_matcher_cache_is_exact_and_bounded(tmp_path, bgl_miner: LogTemplateMiner, bgl_lines: list[dict]):
    path = bgl_miner.save(tmp_path / "miner_state.json")
    contents = [line["content"] for line in bgl_lines] * 2 + [UNSEEN]
    batch = pa.table({"content": contents})
    plain = TemplateMatcher(str(path), cache_size=0)(batch)
    cached = TemplateMatcher(str(path), cache_size=1 << 17)
    assert cached(batch).equals(plain)
    info = cached.match.cache_info()
    assert info.misses == len(set(contents)) and info.hits == len(contents) - len(set(contents))
    small = TemplateMatcher(str(path), cache_size=10)
    assert small(batch).equals(plain) and small.match.cache_info().currsize == 10


def test_fitting_on_contents_masked_elsewhere_learns_the_same_tree(bgl_lines: list[dict], bgl_miner: LogTemplateMiner):
    from pipelines.templates.miner import mask_contents

    contents = [line["content"] for line in bgl_lines]
    masking = tuple(tuple(rule) for rule in bgl_miner.settings["masking"])
    masked = []
    for start in range(0, len(contents), 300):  # in batches, as the read tasks mask them
        batch = pa.table({"content": contents[start : start + 300]})
        masked += mask_contents(batch, masking).column("masked").to_pylist()
    assert masked != contents and len(masked) == len(contents)
    miner = LogTemplateMiner.fit_masked(masked, masking=masking)
    assert miner.templates() == bgl_miner.templates()
    assert miner.state_bytes() == bgl_miner.state_bytes()
    assert [miner.match(c) for c in contents] == [bgl_miner.match(c) for c in contents]
