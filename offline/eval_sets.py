"""Labelled sets for `mmsearch eval`: each a corpus, queries and judgements, split dev / test.

- `scifact-train`, `climate-fever`: BEIR folders from ../shared/data (climate-fever's ids are
  renamed to plain ones: Milvus Lite 2.5.1 cannot upsert ids holding an apostrophe).
- `wordnet`: the demo's own task, built from WordNet's own material only. A query is one of a
  synset's example sentences with the synset's words blanked out ("we rode on the back of an
  ___"); the answer is the synset. That example is left out of the answer's document.
- `tuxpaint`: judged text queries for the Tux Paint stamps' captions (tuxpaint_judged.json).

Every query is assigned to dev or test by a hash of its id: fusion weights and thresholds are
tuned on dev, the README reports test.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from functions.search.summarize import STOP_WORDS
from offline.demo_corpus import (
    WORDNET_DIR,
    DocumentVariant,
    Synset,
    familiarity,
    read_synsets,
    synset_record,
    write_jsonl,
)

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
JUDGED_TUXPAINT = Path(__file__).resolve().parent / "tuxpaint_judged.json"
BLANK = "___"
_WORD = re.compile(r"[\w']+(?:-[\w']+)*")

Qrels = dict[str, dict[str, int]]


@dataclass(frozen=True)
class LabelledSet:
    """A corpus (JSON lines or BEIR folder) with queries and graded judgements."""

    name: str
    scene: str
    corpus: Path
    queries: dict[str, str]
    qrels: Qrels

    def split(self, part: str) -> LabelledSet:
        """The queries of one split: `dev`, `test` or `all`."""
        if part == "all":
            return self
        keep = {q for q in self.qrels if split_of(q) == part}
        return LabelledSet(
            f"{self.name}/{part}",
            self.scene,
            self.corpus,
            {q: self.queries[q] for q in keep},
            {q: self.qrels[q] for q in keep},
        )


def split_of(query_id: str) -> str:
    """`dev` or `test`, half each, fixed by the id (a stable hash, not Python's)."""
    return "dev" if hashlib.sha256(query_id.encode()).digest()[0] % 2 == 0 else "test"


def write_beir(
    folder: Path, records: Iterable[Mapping[str, object]], queries: Mapping[str, str], qrels: Qrels
) -> Path:
    """A BEIR-shaped folder: corpus.jsonl (our QA records), queries.jsonl, qrels.tsv."""
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl((dict(r) for r in records), folder / "corpus.jsonl")
    write_jsonl(({"_id": q, "text": t} for q, t in queries.items()), folder / "queries.jsonl")
    rows = ["query-id\tcorpus-id\tscore"]
    rows += [f"{q}\t{d}\t{g}" for q, judged in qrels.items() for d, g in judged.items()]
    (folder / "qrels.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def read_beir(name: str, folder: Path, scene: str = "qa") -> LabelledSet:
    """A BEIR folder as a labelled set (judged queries only)."""
    from offline.evaluate import read_qrels, read_queries

    queries, qrels = read_queries(folder), read_qrels(folder)
    qrels = {q: r for q, r in qrels.items() if q in queries}
    return LabelledSet(name, scene, folder, {q: queries[q] for q in qrels}, qrels)


def climate_fever(out: Path, source: Path = SHARED_DATA / "climate-fever") -> LabelledSet:
    """climate-fever with corpus ids renamed `cf<n>` (the originals hold apostrophes)."""
    folder = out / "climate-fever"
    if not (folder / "qrels.tsv").exists():
        renamed: dict[str, str] = {}
        records = []
        with (source / "corpus.jsonl").open(encoding="utf-8") as lines:
            for line in lines:
                raw = json.loads(line)
                renamed[raw["_id"]] = new_id = f"cf{len(renamed)}"
                records.append(
                    {"id": new_id, "question": raw.get("title", ""), "answer": raw["text"]}
                )
        original = read_beir("climate-fever", source)
        qrels = {
            q: {renamed[d]: g for d, g in judged.items() if d in renamed}
            for q, judged in original.qrels.items()
        }
        write_beir(folder, records, original.queries, {q: j for q, j in qrels.items() if j})
    return read_beir("climate-fever", folder)


def masked_example(synset: Synset, example: str) -> str | None:
    """`example` with every word sharing a stem with the synset's words blanked; None when
    nothing was blanked (the sentence does not use the word) or under three words are left."""
    from functions.search.summarize import _stem

    stems = {_stem(w) for word in synset.words for w in _WORD.findall(word)}
    stems |= {w.casefold() for word in synset.words for w in _WORD.findall(word)}
    blanked = 0

    def blank(match: re.Match[str]) -> str:
        nonlocal blanked
        word = match.group()
        if _stem(word) in stems or word.casefold() in stems:
            blanked += 1
            return BLANK
        return word

    text = _WORD.sub(blank, example)
    text = re.sub(rf"{BLANK}(?:[\s-]+{BLANK})+", BLANK, text)
    content = [w for w in _WORD.findall(text) if w != BLANK and w.casefold() not in STOP_WORDS]
    if not blanked or len(content) < 3:
        return None
    return text


def describe(synset: Synset, synsets: Mapping[str, Synset]) -> tuple[str, str] | None:
    """(the example used, the query) for a synset with a hypernym and a usable example: the
    hypernym's first word, then the example with the synset's words blanked ("gain: he made
    a ___ in the commodities market")."""
    parents = [synsets[h] for h in synset.hypernyms if h in synsets]
    if not parents:
        return None
    for example in synset.examples:
        masked = masked_example(synset, example)
        if masked is not None:
            return example, f"{parents[0].words[0]}: {masked}"
    return None


def wordnet_set(
    out: Path,
    *,
    variant: DocumentVariant = "gloss",
    corpus_size: int = 10_000,
    queries: int = 600,
    familiar: int = 50_000,
    seed: int = 16,
    wordnet_dir: Path = WORDNET_DIR,
    must_include: Iterable[str] = (),
) -> LabelledSet:
    """The "describe it, find the word" set over a `corpus_size` sample of the demo's
    `familiar` most familiar synsets: every answer plus random others (`must_include` too)."""
    folder = out / f"wordnet-{variant}-{corpus_size}"
    synsets = read_synsets(wordnet_dir)
    ranks = familiarity(wordnet_dir)
    pool = sorted(synsets, key=lambda i: (ranks.get(i, (2, 0)), i))[:familiar]
    rng = random.Random(seed)
    asked: dict[str, tuple[str, str]] = {}  # synset id -> (example used, query)
    for synset_id in rng.sample(pool, len(pool)):
        if query := describe(synsets[synset_id], synsets):
            asked[synset_id] = query
        if len(asked) >= queries:
            break
    chosen = set(asked) | set(must_include)
    others = [i for i in pool if i not in chosen]
    chosen |= set(rng.sample(others, max(0, min(len(others), corpus_size - len(chosen)))))
    records = [
        synset_record(synsets[i], synsets, variant, [asked[i][0]] if i in asked else ())
        for i in sorted(chosen)
    ]
    query_ids = {f"wn{n}": i for n, i in enumerate(asked)}
    write_beir(
        folder,
        records,
        {q: asked[i][1] for q, i in query_ids.items()},
        {q: {i: 1} for q, i in query_ids.items()},
    )
    return read_beir(f"wordnet-{variant}", folder)


def tuxpaint_set(out: Path, judged: Path = JUDGED_TUXPAINT) -> LabelledSet:
    """The judged caption queries over the Tux Paint stamps (scene t2i)."""
    from indexing.image_corpus import TUXPAINT_STAMPS, tuxpaint_corpus
    from indexing.image_corpus import write_jsonl as write_images

    folder = out / "tuxpaint"
    folder.mkdir(parents=True, exist_ok=True)
    write_images(tuxpaint_corpus(TUXPAINT_STAMPS), folder / "corpus.jsonl")
    data = json.loads(judged.read_text(encoding="utf-8"))
    queries = {q["id"]: q["query"] for q in data["queries"]}
    qrels = {q["id"]: {d: 1 for d in q["relevant"]} for q in data["queries"]}
    return LabelledSet("tuxpaint", "t2i", folder / "corpus.jsonl", queries, qrels)


def sliced(labelled: LabelledSet, out: Path, max_docs: int, seed: int = 16) -> LabelledSet:
    """The set over at most `max_docs` documents: every judged one plus random distractors
    (for machines where embedding the whole corpus takes too long; say so when reporting)."""
    from indexing.corpus import iter_records

    folder = out / f"{labelled.name}-{max_docs}"
    if not (folder / "qrels.tsv").exists():
        records = [r for _, r in iter_records(labelled.corpus) if isinstance(r, dict)]
        judged = {d for j in labelled.qrels.values() for d in j}
        others = [r for r in records if str(r["id"]) not in judged]
        rng = random.Random(seed)
        keep = judged | {
            str(r["id"])
            for r in rng.sample(others, max(0, min(len(others), max_docs - len(judged))))
        }
        write_beir(
            folder, [r for r in records if str(r["id"]) in keep], labelled.queries, labelled.qrels
        )
    return read_beir(labelled.name, folder, labelled.scene)
