"""The demo corpus: WordNet 3.0 glosses as a "describe it, find the word" question/answer set.

Each synset becomes one record: its words are the question, its gloss the answer. The data comes
from Debian's ``wordnet-base`` package, © 2006 Princeton University, under the "WordNet3.0"
licence (as named in /usr/share/doc/wordnet-base/copyright): a permissive, BSD-like licence that
allows use, copying, modification and distribution provided the copyright notice and disclaimer
are kept on all copies.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

WORDNET_DIR = Path("/usr/share/wordnet")

# (data file suffix, part-of-speech name), in the order records are yielded.
POS_FILES: tuple[tuple[str, str], ...] = (
    ("noun", "noun"),
    ("verb", "verb"),
    ("adj", "adjective"),
    ("adv", "adverb"),
)

# WordNet's lexnames table, indexed by lex_filenum; used when the dir has no `lexnames` file.
LEXNAMES: tuple[str, ...] = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather",
    "adj.ppl",
)  # fmt: skip

# Pointer target part-of-speech letters ("s" is an adjective satellite) to our names.
_POS_NAME = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}

# Syntactic markers on adjectives: (a) attributive, (p) predicative, (ip) immediately postnominal.
_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")


class DemoCorpusMissing(Exception):
    """The WordNet data files the demo corpus is built from are not installed."""

    def __init__(self, wordnet_dir: Path) -> None:
        super().__init__(
            f"WordNet data files not found in {wordnet_dir}: "
            "run `apt-get install wordnet-base` (or `make demo`, which installs it)."
        )


def data_files(wordnet_dir: Path = WORDNET_DIR) -> list[Path]:
    """Return the four WordNet data files, raising DemoCorpusMissing if any is absent."""
    paths = [wordnet_dir / f"data.{suffix}" for suffix, _ in POS_FILES]
    if not all(path.is_file() for path in paths):
        raise DemoCorpusMissing(wordnet_dir)
    return paths


def read_lexnames(wordnet_dir: Path = WORDNET_DIR) -> dict[int, str]:
    """Map lex_filenum to lexicographer file name, from `lexnames` if present, else built in."""
    names = dict(enumerate(LEXNAMES))
    path = wordnet_dir / "lexnames"
    if path.is_file():
        # Each line: "<lex_filenum> <name> <syntactic category>".
        for fields in (line.split() for line in path.read_text(encoding="utf-8").splitlines()):
            if len(fields) >= 2 and fields[0].isdigit():
                names[int(fields[0])] = fields[1]
    return names


@dataclass(frozen=True)
class Synset:
    """One WordNet synset: its words, definition, example sentences and hypernyms."""

    id: str
    pos: str
    lexname: str
    words: tuple[str, ...]
    definition: str
    examples: tuple[str, ...]
    hypernyms: tuple[str, ...]  # record ids (instance hypernyms included)
    gloss: str = ""  # as in the data file: definition and examples


# Richer text for the embedded document, measured on the "describe it" set (README).
DocumentVariant = Literal["gloss", "definition", "hypernyms", "hypernym_gloss"]
# What the demo indexes (measured on the "describe it" set: README, Relevance).
DEMO_VARIANT: DocumentVariant = "gloss"


def parse_synset(line: str, pos: str, lexnames: dict[int, str]) -> Synset:
    """Parse one WordNet data line (wndb(5WN) format)."""
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    offset, lex_filenum, word_count = fields[0], int(fields[1]), int(fields[3], 16)
    words = tuple(
        _ADJ_MARKER.sub("", word).replace("_", " ") for word in fields[4 : 4 + 2 * word_count : 2]
    )
    at = 4 + 2 * word_count
    pointers = int(fields[at])
    hypernyms = []
    for i in range(pointers):
        symbol, target, target_pos = fields[at + 1 + 4 * i : at + 4 + 4 * i]
        if symbol in ("@", "@i"):
            hypernyms.append(f"wn:{_POS_NAME[target_pos]}:{target}")
    definition, examples = split_gloss(gloss.strip())
    return Synset(
        id=f"wn:{pos}:{offset}",
        pos=pos,
        lexname=lexnames[lex_filenum],
        words=words,
        definition=definition,
        examples=examples,
        hypernyms=tuple(hypernyms),
        gloss=gloss.strip(),
    )


_QUOTED = re.compile(r'"([^"]*)"')


def split_gloss(gloss: str) -> tuple[str, tuple[str, ...]]:
    """A gloss as its definition (before the first quoted example) and its examples."""
    first = gloss.find('"')
    definition = (gloss if first < 0 else gloss[:first]).strip().rstrip(";").strip()
    return definition, tuple(e.strip() for e in _QUOTED.findall(gloss) if e.strip())


def parse_data_line(line: str, pos: str, lexnames: dict[int, str]) -> dict[str, object]:
    """Turn one WordNet data line into a record: words as the question, gloss as the answer."""
    gloss = line.partition(" | ")[2]
    synset = parse_synset(line, pos, lexnames)
    return {
        "id": synset.id,
        "question": ", ".join(synset.words),
        "answer": gloss.strip(),
        "category": [pos, synset.lexname],
    }


def synset_record(
    synset: Synset,
    synsets: Mapping[str, Synset],
    variant: DocumentVariant = "gloss",
    drop_examples: Iterable[str] = (),
) -> dict[str, object]:
    """A synset as a demo record whose text is `variant`: `gloss` (definition and examples, the
    data file's gloss), `definition` (no examples), `hypernyms` (gloss, then "a kind of" and the
    hypernyms' words) or `hypernym_gloss` (also their definitions). `drop_examples` leaves those
    example sentences out (the evaluation's queries)."""
    answer = synset.gloss if variant != "definition" else synset.definition
    for example in drop_examples:
        answer = answer.replace(f'; "{example}"', "").replace(f'"{example}"', "")
    parents = [synsets[h] for h in synset.hypernyms if h in synsets]
    if variant in ("hypernyms", "hypernym_gloss") and parents:
        kinds = ", ".join(dict.fromkeys(w for p in parents for w in p.words))
        answer += f" (a kind of {kinds}"
        if variant == "hypernym_gloss":
            answer += ": " + "; ".join(p.definition for p in parents)
        answer += ")"
    return {
        "id": synset.id,
        "question": ", ".join(synset.words),
        "answer": answer,
        "category": [synset.pos, synset.lexname],
    }


def read_wordnet(wordnet_dir: Path = WORDNET_DIR) -> Iterator[dict[str, object]]:
    """Yield one record per synset, nouns, verbs, adjectives then adverbs, each by offset."""
    paths = data_files(wordnet_dir)
    lexnames = read_lexnames(wordnet_dir)
    for path, (_, pos) in zip(paths, POS_FILES, strict=True):
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                # Lines starting with two spaces are the licence header.
                if line.startswith("  ") or not line.strip():
                    continue
                yield parse_data_line(line, pos, lexnames)


def read_synsets(wordnet_dir: Path = WORDNET_DIR) -> dict[str, Synset]:
    """Every synset by record id, nouns, verbs, adjectives then adverbs, each by offset."""
    paths = data_files(wordnet_dir)
    lexnames = read_lexnames(wordnet_dir)
    synsets: dict[str, Synset] = {}
    for path, (_, pos) in zip(paths, POS_FILES, strict=True):
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if line.startswith("  ") or not line.strip():
                    continue
                synset = parse_synset(line, pos, lexnames)
                synsets[synset.id] = synset
    return synsets


def familiarity(wordnet_dir: Path = WORDNET_DIR) -> dict[str, tuple[int, int]]:
    """Rank key per record id from the index files: sense-tagged senses first, then by sense
    number (WordNet lists each word's senses most frequent first); lower is more familiar."""
    ranks: dict[str, tuple[int, int]] = {}
    for suffix, pos in POS_FILES:
        with (wordnet_dir / f"index.{suffix}").open(encoding="utf-8") as lines:
            for line in lines:
                if line.startswith("  "):
                    continue
                fields = line.split()
                pointers = int(fields[3])
                tagged = int(fields[5 + pointers])
                for position, offset in enumerate(fields[6 + pointers :]):
                    key = (0 if position < tagged else 1, position)
                    record_id = f"wn:{pos}:{offset}"
                    ranks[record_id] = min(ranks.get(record_id, key), key)
    return ranks


def most_familiar(
    records: Iterable[dict[str, object]], limit: int, wordnet_dir: Path = WORDNET_DIR
) -> list[dict[str, object]]:
    """The `limit` most familiar records, kept in their original order."""
    ranks = familiarity(wordnet_dir)
    listed = list(records)
    order = sorted(range(len(listed)), key=lambda i: (ranks.get(str(listed[i]["id"]), (2, 0)), i))
    return [listed[i] for i in sorted(order[:limit])]


def write_jsonl(records: Iterable[dict[str, object]], path: Path) -> int:
    """Write records as JSON lines atomically (temp file, then rename); return how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for record in records:
                out.write(json.dumps(record, ensure_ascii=False))
                out.write("\n")
                count += 1
        os.chmod(tmp_name, 0o644)  # mkstemp makes 0600; the corpus is meant to be shared
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return count


def ensure_demo_corpus(
    out_path: Path,
    wordnet_dir: Path = WORDNET_DIR,
    limit: int | None = None,
    variant: DocumentVariant = DEMO_VARIANT,
) -> Path:
    """Build the demo corpus JSONL at out_path unless it is already newer than the WordNet data
    (and this module); with `limit`, only the most familiar synsets (see `familiarity`); each
    record's text as `variant` (see `synset_record`)."""
    paths = data_files(wordnet_dir)
    newest_source = max(path.stat().st_mtime for path in [*paths, Path(__file__)])
    if out_path.is_file() and out_path.stat().st_mtime > newest_source:
        return out_path
    synsets = read_synsets(wordnet_dir)
    records: Iterable[dict[str, object]] = (
        synset_record(s, synsets, variant) for s in synsets.values()
    )
    if limit:
        records = most_familiar(records, limit, wordnet_dir)
    write_jsonl(records, out_path)
    return out_path
