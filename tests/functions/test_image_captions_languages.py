"""Issue 18: the Tux Paint stamps' Chinese and Japanese captions are BM25 fields of their own
(caption_zh with the Chinese analyzer, caption_ja with the Japanese one), so a Chinese or
Japanese query finds the stamp through the API; English captions keep today's analyzer."""

from __future__ import annotations

import pytest

from functions.core.scenes import I2I, T2I
from functions.core.settings import Settings
from indexing.image_indexer import captions_by_language
from tests.functions.test_api import Call, front_door, search_routes
from tests.functions.test_image_search import COINS


@pytest.fixture(scope="module", params=["lambda", "http"])
def search(qa_and_images_once: Settings, request: pytest.FixtureRequest) -> Call:
    """One search service per front door for the module: its tests only read."""
    return front_door(str(request.param), search_routes(qa_and_images_once))


def ask(search: Call, query: str, match: str = "caption_bm25") -> list[str]:
    request = {"scene": "t2i", "query": query, "debug": {"experiments": {"match": match}}}
    status, body, _ = search("POST", "/v1/search", request)
    assert status == 200, body
    return [hit["id"] for hit in body["hits"]]


def test_the_image_scenes_analyse_each_caption_language_apart() -> None:
    for scene in (T2I, I2I):
        assert [(f.text, f.language) for f in scene.lexical_fields] == [
            ("text", "english"),
            ("text__caption_zh", "chinese"),
            ("text__caption_ja", "japanese"),
        ]


def test_captions_by_language_joins_both_chinese_scripts() -> None:
    captions = {"zh_CN": "美元一分硬币。", "zh_TW": "美國的一分錢", "ja": "アメリカの１セント"}
    assert captions_by_language(captions) == {
        "caption_zh": "美元一分硬币。 美國的一分錢",
        "caption_ja": "アメリカの１セント",
    }
    assert captions_by_language({}) == {"caption_zh": "", "caption_ja": ""}


def test_a_chinese_query_finds_the_coins_by_bm25(search: Call) -> None:
    hits = ask(search, "硬币")
    coins = [h for h in hits if h.startswith(f"tux:{COINS}/")]
    assert len(coins) == 6 and hits[:6] == coins  # every coin, and only coins, first


def test_a_japanese_query_finds_the_nickel_first(search: Call) -> None:
    assert ask(search, "ニッケル")[0] == f"tux:{COINS}/005nickel"
    assert ask(search, "ダイム")[0] == f"tux:{COINS}/010dime"


def test_english_captions_keep_stemming_beside_them(search: Call) -> None:
    assert ask(search, "pennies")[0] == f"tux:{COINS}/001penny"


def test_hybrid_matching_puts_coins_first_for_the_chinese_query(search: Call) -> None:
    # The English encoder's dense list means nothing for Chinese: the fused order among the
    # coins is its noise, but the Chinese BM25 list puts coins ahead of everything else.
    hits = ask(search, "一分硬币", "caption_hybrid")
    assert hits[0].startswith(f"tux:{COINS}/")
    assert f"tux:{COINS}/001penny" in hits[:6]


def served(search: Call, query: str) -> tuple[list[str], dict]:
    """The served default (no forced experiment), as the page asks."""
    status, body, _ = search("POST", "/v1/search", {"scene": "t2i", "query": query})
    assert status == 200, body
    return [hit["id"] for hit in body["hits"]], body


def test_the_served_default_answers_chinese_and_japanese_queries(search: Call) -> None:
    # t2i serves dense captions through the English encoder, which cannot read these: a
    # query in Chinese or Japanese script matches the captions of its language by BM25.
    hits, body = served(search, "硬币")
    assert hits[:6] == [h for h in hits if h.startswith(f"tux:{COINS}/")][:6]
    assert not body["weak_match"]
    assert served(search, "ニッケル")[0][0] == f"tux:{COINS}/005nickel"
    # A mixed query keeps the encoder's side too (hybrid); English stays dense as served.
    assert served(search, "penny 硬币")[0][0].startswith(f"tux:{COINS}/")
    assert served(search, "a copper coin")[0] == ask(search, "a copper coin", "caption")


def test_script_routing_leaves_other_experiments_and_multilingual_setups_alone() -> None:
    from functions.core.pipeline_config import MatchParams
    from functions.search.matching import for_query_script

    dense = MatchParams(kind="dense", space="text")
    cjk = ["english", "chinese"]
    assert for_query_script(dense, "硬币", cjk).kind == "bm25"
    assert for_query_script(dense, "the 硬币", cjk).kind == "hybrid"
    assert for_query_script(dense, "coins", cjk) is dense
    assert for_query_script(dense, "硬币", ["english"]) is dense  # nothing analyses it
    for params in (
        MatchParams(kind="hybrid", space="text"),
        MatchParams(kind="dense", space="image"),
        MatchParams(kind="dense", space="text", cjk_queries="as_configured"),
    ):
        assert for_query_script(params, "硬币", cjk) is params


def test_chinese_and_japanese_runs_are_no_words_to_the_speller() -> None:
    from functions.search.spelling import MIN_VOCABULARY, Speller, count_terms, spaced_words

    assert spaced_words("大象 elephant 長い鼻 trunk") == ["elephant", "trunk"]
    vocabulary = count_terms(["elephant trunk 大象"] + [f"word{i:05d}" for i in range(5000)])
    assert "大象" not in vocabulary
    speller = Speller({**vocabulary, **{f"filler{i}": 1 for i in range(MIN_VOCABULARY)}})
    # Before: a Chinese phrase was one unknown "word", so coverage 0 and a weak match.
    assert speller.coverage("长鼻子的动物") == 1.0
    assert speller.coverage("大象 trunk") == 1.0
    assert speller.suggest("大象象 elephnt") == "大象象 elephant"
