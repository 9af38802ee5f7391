"""Image results (issue 16, page item 7): thumbnails sharp at the displayed size, a larger
view on click, and "more like this" on each image."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.frontend.conftest import close_page, new_page, search, shot, wait_idle
from tests.functions.test_image_search import COINS

# Per thumbnail: its displayed size, its pixels, and its original's pixels (stamps are PNGs
# stored under the same content hash as their WebP thumbnail).
SIZES = """async () => Promise.all([...document.querySelectorAll('.image-hit img')].map(
  async (img) => {
    await img.decode();
    const original = new Image();
    original.src = img.src.replace('/thumbs/', '/originals/').replace(/\\.webp$/, '.png');
    await original.decode();
    const box = img.getBoundingClientRect();
    return {
      shown: Math.max(box.width, box.height),
      pixels: Math.max(img.naturalWidth, img.naturalHeight),
      original: Math.max(original.naturalWidth, original.naturalHeight),
    };
  }))"""


def test_thumbnails_are_sharp_at_the_displayed_size(browser: Any, server: str) -> None:
    dpr = 2
    page = new_page(browser, f"{server}/?tab=images&q=an+animal&k=20", device_scale_factor=dpr)
    wait_idle(page)
    for image in page.locator(".image-hit img").all():
        image.scroll_into_view_if_needed()
    sizes = page.evaluate(SIZES)
    assert len(sizes) == 20
    assert any(s["original"] > s["shown"] * dpr for s in sizes)  # some need a real thumbnail
    for size in sizes:
        assert size["shown"] <= size["pixels"] + 0.5, size  # never stretched past its pixels
        # as many pixels as the screen shows, unless the original itself has fewer
        assert size["pixels"] >= min(size["shown"] * dpr, size["original"]) - 1, size
    shot(page, "images-sharp-2x")
    close_page(page)


def test_an_image_opens_larger_and_escape_closes_it(page: Any) -> None:
    page.check("input[name=scene][value=images]")
    search(page, "a frog")
    opener = page.locator(".image-open").first
    caption = opener.locator(".image-caption").inner_text()
    opener.click()
    viewer = page.locator("#viewer")
    assert viewer.is_visible()
    assert page.inner_text("#viewer-caption") == caption
    page.wait_for_function("() => document.querySelector('#viewer-image').naturalWidth > 0")
    assert "/media/originals/" in page.get_attribute("#viewer-image", "src")
    thumb = page.evaluate("() => document.querySelector('.image-hit img').width")
    assert page.evaluate("() => document.querySelector('#viewer-image').width") > thumb
    shot(page, "image-viewer")
    page.keyboard.press("Escape")
    assert viewer.is_hidden()
    assert page.evaluate("() => document.activeElement.classList.contains('image-open')")
    opener.click()  # its tags filter the search
    page.locator("#viewer-tags button", has_text="amphibians").click()
    assert viewer.is_hidden()
    wait_idle(page)
    assert parse_qs(urlparse(page.url).query)["tag"] == ["amphibians"]
    assert set(page.locator(".image-caption").all_inner_texts()) == {"A frog."}


def test_more_like_this_searches_by_that_image_and_is_a_link(page: Any) -> None:
    page.check("input[name=scene][value=images]")
    search(page, "a five cent coin called a nickel")
    nickel = f"tux:{COINS}/005nickel"
    page.locator(".image-hit", has_text="nickel").first.locator(".more-like").click()
    page.wait_for_function(
        "() => document.querySelector('#status').textContent.includes('this image')"
    )
    wait_idle(page)
    assert parse_qs(urlparse(page.url).query)["like"] == [nickel]
    assert "nickel" in page.inner_text("#query-image-label")
    assert "nickel" in page.locator(".image-caption").first.inner_text()  # finds itself first
    # The text in the box stays, refining the image (test_page_mixed_query.py).
    assert page.input_value("#query") == "a five cent coin called a nickel"
    shot(page, "more-like-this")
    page.reload()  # the link alone: the page looks the image up by id and searches again
    wait_idle(page)
    assert "nickel" in page.locator(".image-caption").first.inner_text()
    assert page.locator("#query-image-preview").is_visible()
    page.go_back()
    wait_idle(page)
    assert page.input_value("#query") == "a five cent coin called a nickel"
