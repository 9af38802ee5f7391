"""Issue 15, finding 2: a small upload that decodes huge must not blow up memory.

A 6,324 x 6,324 RGBA PNG (a few hundred KB) raised the server's peak memory by ~760 MB and four
at once by gigabytes. Peak memory is measured as the growth of VmHWM in a fresh process that
serves /v1/embed through each front door."""

from __future__ import annotations

import base64
import io
import json
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import pytest
from PIL import Image

from functions.core.models.memory_budget import MemoryBudget
from functions.core.models.text_encoder import TextEncoder
from functions.core.models.tiny_image import TinyImageEncoder
from functions.preprocess.service import Preprocessor, routes
from tests.functions.test_api import Call, front_door

ROOT = Path(__file__).resolve().parents[2]
SIDE = 6324


def rgba_png(side: int) -> bytes:
    """A mostly transparent RGBA PNG of side x side with a few opaque lines: small on disk,
    side * side * 4 bytes decoded. Built row by row so the test never holds it decoded."""
    pack = zlib.compressobj(9)
    chunks = []
    for y in range(side):
        row = bytearray(side * 4)
        if y % 500 < 3:
            row[:] = b"\xc8\x50\x20\xff" * side
        chunks.append(pack.compress(b"\x00" + bytes(row)))
    chunks.append(pack.flush())

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"".join(chunks))
        + (chunk(b"IEND", b""))
    )


PROBE = r"""
import base64, json, re, sys, threading
from pathlib import Path
from functions.core.settings import Settings
from functions.preprocess.service import build_preprocessor, routes
from tests.functions.test_api import Call, front_door

def peak_mb():
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024

door, model_dir, image_path, copies = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
settings = Settings(home=Path(image_path).parent / "home", model_dir=Path(model_dir))
call = front_door(door, routes(build_preprocessor(settings)))
small = base64.b64encode(Path("tests/fixtures/images/camera-web.png").read_bytes()).decode()
assert call("POST", "/v1/embed", {"images": [small], "space": "image"})[0] == 200
before = peak_mb()
big = base64.b64encode(Path(image_path).read_bytes()).decode()
statuses = []
def one():
    statuses.append(call("POST", "/v1/embed", {"images": [big], "space": "image"})[0])
threads = [threading.Thread(target=one) for _ in range(copies)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"statuses": statuses, "rise_mb": peak_mb() - before}))
"""


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("png") / "huge.png"
    path.write_bytes(rgba_png(SIDE))
    return path


def _probe(door: str, model_dir: Path, image: Path, copies: int) -> dict[str, object]:
    run = subprocess.run(
        [sys.executable, "-c", PROBE, door, str(model_dir), str(image), str(copies)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result: dict[str, object] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("door", ["lambda", "http"])
def test_a_small_png_that_decodes_to_160_mb_raises_peak_memory_by_its_decoded_size_only(
    door: str, model_dir: Path, huge_png: Path
) -> None:
    assert huge_png.stat().st_size < 400_000
    result = _probe(door, model_dir, huge_png, 1)
    assert result["statuses"] == [200]
    # Decoded it is 160 MB; before the fix the rise was ~760 MB (full-size composite copies).
    assert float(str(result["rise_mb"])) < 260, result


def test_four_such_uploads_at_once_stay_within_the_memory_budget(
    model_dir: Path, huge_png: Path
) -> None:
    result = _probe("lambda", model_dir, huge_png, 4)
    assert result["statuses"] == [200] * 4
    # The default budget (384 MiB) lets two decode at once; before: ~3 GB for four.
    assert float(str(result["rise_mb"])) < 384 * 1.048576 + 64, result


def _header_only_png(width: int, height: int, color_type: int = 6) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def text_encoder(model_dir: Path) -> TextEncoder:
    return TextEncoder.load(model_dir)


def _embed_door(door: str, encoder: TextEncoder, images: TinyImageEncoder) -> Call:
    preprocessor = Preprocessor(encoder, max_chars=1000, image_space=lambda: images)
    return front_door(door, routes(preprocessor))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize("door", ["lambda", "http"])
def test_an_image_over_the_decoded_byte_limit_is_refused_before_decoding(
    door: str, text_encoder: TextEncoder
) -> None:
    call = _embed_door(door, text_encoder, TinyImageEncoder(max_decoded_bytes=3_000_000))
    # 1,000 x 1,000 pixels is far under the pixel limit; RGBA it decodes to 4 MB.
    body = {"images": [_b64(_header_only_png(1000, 1000))], "space": "image"}
    status, reply, _ = call("POST", "/v1/embed", body)
    assert status == 422
    assert "decodes to 4,000,000 bytes" in reply["error"]["message"]
    assert "limit is 3,000,000" in reply["error"]["message"]


@pytest.mark.parametrize("door", ["lambda", "http"])
def test_formats_outside_the_accepted_ones_are_never_parsed(
    door: str, text_encoder: TextEncoder
) -> None:
    call = _embed_door(door, text_encoder, TinyImageEncoder())
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "BMP")
    status, reply, _ = call(
        "POST", "/v1/embed", {"images": [_b64(out.getvalue())], "space": "image"}
    )
    assert status == 422
    assert "not a readable image (accepted: JPEG, PNG, WEBP, GIF)" in reply["error"]["message"]


@pytest.mark.parametrize("door", ["lambda", "http"])
def test_an_upload_finding_the_memory_budget_spent_gets_a_503_with_a_retry_hint(
    door: str, text_encoder: TextEncoder
) -> None:
    budget = MemoryBudget(8 * 2**20, wait_s=0.2)
    call = _embed_door(door, text_encoder, TinyImageEncoder(budget=budget))
    image = _b64((ROOT / "tests/fixtures/images/camera-web.png").read_bytes())
    held, release = threading.Event(), threading.Event()

    def hog() -> None:  # another request decoding a large image right now
        with budget.hold(budget.capacity):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hog)
    thread.start()
    try:
        held.wait(5)
        status, reply, headers = call("POST", "/v1/embed", {"images": [image], "space": "image"})
    finally:
        release.set()
        thread.join()
    assert status == 503
    assert reply["error"]["code"] == "server_busy"
    assert headers["retry-after"] == "1"
    # Once the budget is free again the same request succeeds.
    assert call("POST", "/v1/embed", {"images": [image], "space": "image"})[0] == 200
