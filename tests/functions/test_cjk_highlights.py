"""Issue 18, highlights and snippets for CJK text: offsets come from the index's own
segmentation (jieba, as Milvus' analyzers), never from whitespace, and count Unicode code
points (an emoji is one, not two UTF-16 units)."""

from __future__ import annotations

import subprocess
import sys

from functions.core.pipeline_config import SummaryParams
from functions.core.scenes import parse_scenes
from functions.search.segmentation import marks, terms
from functions.search.summarize import QueryTerms, snippet, summarize

SCENE = parse_scenes(
    """
scenes:
  notes:
    fields: {title: text, zh: text, ja: text, mixed: text}
    embed_fields: [title, zh, ja, mixed]
    bm25_fields: [title, zh, ja, mixed]
    analyzers: {zh: chinese, ja: japanese, mixed: standard}
"""
)["notes"]


def marked(text: str, spans: list[tuple[int, int]]) -> list[str]:
    return [text[a:b] for a, b in spans]


def test_chinese_highlights_follow_jieba_words_not_characters() -> None:
    text = "大象是一种有长鼻子的大型动物"
    query = QueryTerms.for_scene("长鼻子的动物", SCENE)
    spans = query.highlights("zh", text)
    # jieba makes 有长 one word, so the query's 长 marks nothing: as BM25 matched.
    assert marked(text, spans) == ["鼻子", "的", "动物"]
    assert spans == [(7, 9), (9, 10), (12, 14)]


def test_a_search_mode_sub_word_marks_its_place_inside_the_longer_word() -> None:
    text = "中华人民共和国成立了"
    assert marks(text, frozenset({"共和国"}), "chinese") == [(4, 7)]
    # The query 共和国 is itself segmented in search mode (共和, 共和国): one merged mark.
    query = QueryTerms.for_scene("共和国", SCENE)
    assert query.highlights("zh", text) == [(4, 7)]


def test_japanese_marks_kanji_words_and_each_matching_kana() -> None:
    text = "東京は日本の首都です"
    query = QueryTerms.for_scene("日本の首都", SCENE)
    assert marked(text, query.highlights("ja", text)) == ["日本", "の", "首都"]


def test_the_chinese_analyzer_marks_no_kana_as_it_indexes_none() -> None:
    text = "東京は日本の首都です"
    query = QueryTerms.for_scene("日本の首都", SCENE)
    assert marked(text, query.highlights("zh", text)) == ["日本", "首都"]


def test_mixed_latin_and_cjk_marks_latin_words_case_blind_and_cjk_words() -> None:
    text = "新款iPhone手机 Running shoes 跑步鞋"
    query = QueryTerms.for_scene("iphone 跑步", SCENE)
    spans = query.highlights("mixed", text)
    assert marked(text, spans) == ["iPhone", "跑步"]
    assert spans == [(2, 8), (25, 27)]


def test_offsets_count_code_points_past_an_emoji() -> None:
    text = "🐘🐘 大象喜欢水"  # two astral-plane characters: 4 UTF-16 units, 2 code points
    query = QueryTerms.for_scene("大象", SCENE)
    for field in ("zh", "ja", "mixed"):
        assert query.highlights(field, text) == [(3, 5)], field
    assert len("🐘".encode("utf-16-le")) // 2 == 2  # what a UTF-16 count would have shifted by


def test_an_emoji_is_a_term_of_its_own_for_the_multilingual_analyzer() -> None:
    text = "我爱🐘和🐼"
    assert marked(text, QueryTerms.for_scene("🐼", SCENE).highlights("mixed", text)) == ["🐼"]
    # The Chinese analyzer drops emoji, in the index and so in highlights.
    assert QueryTerms.for_scene("🐼", SCENE).highlights("zh", text) == []


def test_whitespace_and_punctuation_are_never_marked() -> None:
    text = "猫 と 犬、そして鳥。"
    query = QueryTerms.for_scene("犬 、。", SCENE)
    assert marked(text, query.highlights("ja", text)) == ["犬"]
    assert all(not t.isspace() for t, _, _ in terms(text, "japanese"))


def test_english_fields_of_the_same_scene_still_mark_by_stem() -> None:
    text = "Elephants run fast"
    query = QueryTerms.for_scene("elephant running", SCENE)
    assert marked(text, query.highlights("title", text)) == ["Elephants", "run"]


def test_a_cjk_snippet_keeps_marks_inside_its_window_in_code_points() -> None:
    text = "🐘" * 30 + "大象是一种有长鼻子的大型动物" + "。" * 80
    query = QueryTerms.for_scene("鼻子", SCENE)
    cut = snippet(text, query, 40, "zh")
    assert cut.text.startswith("…") and cut.text.endswith("…")
    assert [cut.text[a:b] for a, b in cut.highlights] == ["鼻子"]


def test_summarize_marks_each_field_with_its_own_analyzer() -> None:
    document = {
        "id": "n1",
        "title": "Tokyo travels",
        "zh": "东京是日本的首都",
        "ja": "東京は日本の首都です",
        "mixed": "Tokyo 东京 🗼",
    }
    params = SummaryParams(fields=["title", "zh", "ja", "mixed"], snippet_field="ja")
    query = QueryTerms.for_scene("Tokyo 首都 🗼", SCENE)
    _, found, cut = summarize(document, params, query)
    assert {k: marked(document[k], v) for k, v in found.items()} == {
        "title": ["Tokyo"],
        "zh": ["首都"],
        "ja": ["首都"],
        "mixed": ["Tokyo", "🗼"],
    }
    assert cut is not None and marked(cut.text, cut.highlights) == ["首都"]


def test_without_jieba_cjk_fields_have_no_highlights_and_the_log_says_why() -> None:
    # A bundle built without jieba: the search still answers, unhighlighted (fresh process).
    code = (
        "import sys; sys.modules['jieba'] = None\n"
        "from functions.search.segmentation import marks\n"
        "print(marks('大象是一种动物', frozenset({'大象'}), 'chinese'))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert run.stdout.strip() == "[]"
    assert "jieba is not installed" in run.stderr
