"""Chinese and Japanese queries on the Images tab (issue 18): the stamps' Chinese and Japanese
captions are BM25 fields with their own analyzers, so 硬币 ("coin") finds the six coins and
ニッケル the nickel. The served t2i default matches English caption vectors, which cannot read
these (硬币 by the `caption` match alone put penguins and birds first, one coin 5th), so a
query in Chinese or Japanese script is matched by BM25 over its language's captions
(functions/search/matching.py `for_query_script`): the page asks with no experiment forced."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.frontend.conftest import close_page, new_page, search, shot


@pytest.mark.parametrize(
    ("query", "first", "name"),
    [("硬币", ["A US"] * 6, "zh"), ("ニッケル", ["nickel"], "ja")],
)
def test_a_cjk_query_on_the_images_tab_finds_the_stamps_by_their_captions(
    browser: Any, server: str, query: str, first: list[str], name: str
) -> None:
    page = new_page(browser, f"{server}/?tab=images")
    sent: list[dict[str, Any]] = []
    page.on(
        "request",
        lambda r: sent.append(json.loads(r.post_data)) if r.url.endswith("/v1/search") else None,
    )
    search(page, query)
    assert sent[-1]["query"] == query
    assert "debug" not in sent[-1]  # the served default, as every visitor gets it
    captions = page.locator(".image-caption").all_inner_texts()
    # 硬币: the six coins (every caption "A US ... cent piece" or "... dollar") come first.
    assert len(captions) >= len(first)
    assert all(word in caption for word, caption in zip(first, captions, strict=False)), captions
    assert f"“{query}”" in page.inner_text("#status")
    shot(page, f"images-cjk-{name}")
    close_page(page)
