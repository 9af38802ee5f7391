"""The WordNet demo corpus: parsing the real data files, writing JSONL, rebuilding when stale."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import cast

import pytest

from offline.demo_corpus import (
    WORDNET_DIR,
    DemoCorpusMissing,
    ensure_demo_corpus,
    read_wordnet,
    write_jsonl,
)

if not WORDNET_DIR.is_dir():
    pytest.skip(
        f"{WORDNET_DIR} is absent: run `apt-get install wordnet-base`", allow_module_level=True
    )

Record = dict[str, object]


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return list(read_wordnet())


@pytest.fixture()
def small_wordnet(tmp_path: Path) -> Path:
    """A copy of the real data files cut to their licence header and first ten synsets."""
    small = tmp_path / "wordnet"
    small.mkdir()
    for suffix in ("noun", "verb", "adj", "adv"):
        lines = (WORDNET_DIR / f"data.{suffix}").read_text(encoding="utf-8").splitlines(True)
        header = [line for line in lines if line.startswith("  ")]
        (small / f"data.{suffix}").write_text("".join(lines[: len(header) + 10]), encoding="utf-8")
    return small


def by_id(records: list[Record], record_id: str) -> Record:
    return next(record for record in records if record["id"] == record_id)


def test_corpus_has_every_synset_once(records: list[Record]) -> None:
    ids = Counter(record["id"] for record in records)
    assert len(records) >= 100_000
    assert len(ids) >= 50_000
    assert [record_id for record_id, n in ids.items() if n > 1] == []


def test_every_record_has_the_documented_shape(records: list[Record]) -> None:
    for record in records:
        assert set(record) == {"id", "question", "answer", "category"}
        assert record["question"] and record["answer"]
        pos, lexname = cast(list[str], record["category"])
        assert pos in {"noun", "verb", "adjective", "adverb"}
        assert lexname.split(".")[0] in {"noun", "verb", "adj", "adv"}


def test_elephant_synset_is_parsed_from_its_data_line(records: list[Record]) -> None:
    elephants = [
        record
        for record in records
        if "elephant" in str(record["question"]).split(", ") and "noun.animal" in record["category"]  # type: ignore[operator]
    ]
    assert elephants == [
        {
            "id": "wn:noun:02503517",
            "question": "elephant",
            "answer": "five-toed pachyderm",
            "category": ["noun", "noun.animal"],
        }
    ]


def test_licence_header_is_never_a_record(records: list[Record]) -> None:
    synset_lines = sum(
        1
        for suffix in ("noun", "verb", "adj", "adv")
        for line in (WORDNET_DIR / f"data.{suffix}").open(encoding="utf-8")
        if line[:8].isdigit()
    )
    assert len(records) == synset_lines
    assert all(len(str(record["id"]).split(":")[2]) == 8 for record in records)
    assert not any("LICENSEE" in str(record["answer"]) for record in records)
    assert records[0]["id"] == "wn:noun:00001740"
    assert records[0]["question"] == "entity"


def test_adjective_satellite_is_an_adjective_with_markers_stripped(records: list[Record]) -> None:
    # data.adj: "00014358 00 s 02 abounding 0 galore(ip) 0 ..." (ss_type s = satellite).
    record = by_id(records, "wn:adjective:00014358")
    assert record["question"] == "abounding, galore"
    assert record["answer"] == 'existing in abundance; "abounding confidence"; "whiskey galore"'
    assert record["category"] == ["adjective", "adj.all"]


def test_multiword_synset_joins_words_with_spaces_for_underscores(records: list[Record]) -> None:
    record = by_id(records, "wn:noun:00002137")
    assert record["question"] == "abstraction, abstract entity"
    assert record["category"] == ["noun", "noun.Tops"]


def test_write_jsonl_roundtrips_records(tmp_path: Path) -> None:
    records: list[Record] = [
        {"id": "wn:noun:1", "question": "café", "answer": "a small restaurant", "category": []},
        {"id": "wn:noun:2", "question": "b", "answer": "c", "category": ["noun", "noun.Tops"]},
    ]
    path = tmp_path / "out" / "corpus.jsonl"
    assert write_jsonl(records, path) == 2
    text = path.read_text(encoding="utf-8")
    assert "café" in text  # ensure_ascii=False
    assert [json.loads(line) for line in text.splitlines()] == records
    assert [p.name for p in path.parent.iterdir()] == ["corpus.jsonl"]  # no temp file left


def test_ensure_demo_corpus_builds_then_does_not_rebuild_when_fresh(
    small_wordnet: Path, tmp_path: Path
) -> None:
    out = tmp_path / "demo.jsonl"
    assert ensure_demo_corpus(out, small_wordnet) == out
    assert len(out.read_text(encoding="utf-8").splitlines()) == 40
    built_mtime = out.stat().st_mtime_ns
    assert ensure_demo_corpus(out, small_wordnet) == out
    assert out.stat().st_mtime_ns == built_mtime


def test_ensure_demo_corpus_rebuilds_when_older_than_the_data(
    small_wordnet: Path, tmp_path: Path
) -> None:
    out = tmp_path / "demo.jsonl"
    out.write_text("stale\n", encoding="utf-8")
    os.utime(out, (0, 0))
    ensure_demo_corpus(out, small_wordnet)
    assert json.loads(out.read_text(encoding="utf-8").splitlines()[0])["id"].startswith("wn:")


def test_ensure_demo_corpus_raises_for_an_empty_dir(tmp_path: Path) -> None:
    with pytest.raises(DemoCorpusMissing, match="apt-get install wordnet-base"):
        ensure_demo_corpus(tmp_path / "demo.jsonl", tmp_path)
    assert not (tmp_path / "demo.jsonl").exists()


def test_most_familiar_keeps_the_best_ranked_records_in_file_order() -> None:
    from offline.demo_corpus import familiarity, most_familiar

    records = list(read_wordnet())
    chosen = most_familiar(records, 5000)
    ranks = familiarity()
    chosen_ids = {r["id"] for r in chosen}
    assert len(chosen) == 5000 == len(chosen_ids)
    positions = {r["id"]: i for i, r in enumerate(records)}
    assert [positions[r["id"]] for r in chosen] == sorted(positions[r["id"]] for r in chosen)
    worst_chosen = max(ranks[i] for i in chosen_ids)
    best_left = min(ranks[r["id"]] for r in records if r["id"] not in chosen_ids)
    assert worst_chosen <= best_left
