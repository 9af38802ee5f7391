"""Accessibility (issue 16, page item 6): control borders at 3:1 in both themes, the search
box focused on load, "/" and Esc, and image results read once by a screen reader."""

from __future__ import annotations

from typing import Any

import pytest

from tests.frontend.conftest import close_page, new_page, search, shot

# WCAG 2.x contrast of each control's border against its own background and the page's,
# computed from the browser's computed styles (opaque colours: the page uses no alpha here).
CONTRASTS = """() => {
  const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = (c) => {
    const [r, g, b] = rgb(c).map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ratio = (a, b) => {
    const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  };
  const page = getComputedStyle(document.body).backgroundColor;
  return [...document.querySelectorAll("input[type=search], select")].map((el) => {
    const style = getComputedStyle(el);
    return {
      control: el.id || el.dataset.layer,
      own: ratio(style.borderTopColor, style.backgroundColor),
      page: ratio(style.borderTopColor, page),
    };
  });
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_input_and_select_borders_have_3_to_1_contrast(
    browser: Any, server: str, scheme: str
) -> None:
    page = new_page(browser, f"{server}/?debug=1", color_scheme=scheme)
    page.click("#debug summary")
    page.wait_for_selector("select[data-layer=match]")
    contrasts = page.evaluate(CONTRASTS)
    assert {c["control"] for c in contrasts} >= {"query", "top-k", "match"}
    low = [c for c in contrasts if min(c["own"], c["page"]) < 3]
    assert low == [], low
    shot(page, f"controls-{scheme}")
    close_page(page)


def test_the_search_box_has_focus_on_load(page: Any) -> None:
    assert page.evaluate("() => document.activeElement.id") == "query"


def test_slash_focuses_the_search_box_and_escape_clears_it(page: Any) -> None:
    search(page, "refund")
    page.locator(".hit-category").first.focus()
    page.keyboard.press("/")
    assert page.evaluate("() => document.activeElement.id") == "query"
    assert page.input_value("#query") == "refund"  # "/" focused the box; it typed nothing
    page.keyboard.press("Escape")
    assert page.input_value("#query") == ""
    page.focus("input[name=scene][value=qa]")  # a radio button is not a text field
    page.keyboard.press("/")
    assert page.evaluate("() => document.activeElement.id") == "query"
    assert page.locator(".hit").count() == 10  # clearing the box does not wipe the answer


def test_an_image_result_is_read_once(page: Any) -> None:
    page.check("input[name=scene][value=images]")
    search(page, "a five cent coin called a nickel")
    first = page.locator(".image-hit").first
    caption = first.locator(".image-caption").inner_text()
    tree = first.aria_snapshot()
    assert tree.count(caption) == 1, tree
    assert "img" not in tree  # the thumbnail is decorative: the caption already names it
