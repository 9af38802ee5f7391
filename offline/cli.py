"""The `mmsearch` command line: export, index, serve, eval and demo."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from functions.core.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from rich.progress import TaskID

    from indexing.indexer import IndexReport

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True)
FRONTEND_DIR = Path(__file__).resolve().parent.parent / "frontend"


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _batch(settings: Settings) -> Settings:
    # Batch commands move thousands of rows per call: the online timeout is too tight for them.
    return settings.model_copy(update={"store_timeout_s": settings.batch_timeout_s})


def _fail(message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


@app.command()
def export(
    model: Annotated[str | None, typer.Option(help="HF model id or local folder.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder.")] = None,
    force: Annotated[bool, typer.Option(help="Re-export even if the folder is complete.")] = False,
    kind: Annotated[
        Literal["text", "clip"],
        typer.Option(help="text: a sentence encoder; clip: a CLIPModel's text and image towers."),
    ] = "text",
    text_model: Annotated[
        str | None,
        typer.Option(
            help="--kind clip: a sentence-transformers text tower trained into that CLIP's image "
            "space (e.g. sentence-transformers/clip-ViT-B-32-multilingual-v1) instead of its own."
        ),
    ] = None,
) -> None:
    """Export a sentence encoder (or with --kind clip a CLIP model, default
    openai/clip-vit-base-patch32) to ONNX with its tokenizer, checking parity with PyTorch."""
    settings = Settings()
    if text_model is not None and kind != "clip":
        raise _fail("--text-model pairs a text tower with CLIP's image tower: add --kind clip", 2)
    if kind == "clip":
        from offline.export_clip import clip_model_name

        target = out or settings.home / "models" / clip_model_name(model, text_model)
    else:
        target = out or settings.resolved_model_dir
    if _ensure_export(model, target, force, kind, text_model) is False:
        raise typer.Exit(1)


def _ensure_export(
    model: str | None,
    target: Path,
    force: bool,
    kind: Literal["text", "clip"] = "text",
    text_model: str | None = None,
) -> bool:
    from functions.core.models.manifest import ModelManifest
    from offline.export import ExportError, export_text_model

    existing = ModelManifest.read(target) if (target / "manifest.json").exists() else None
    same = existing is not None and (existing.kind, existing.text_source) == (kind, text_model)
    if not force and existing is not None and same:
        console.print(f"model already exported: {target} ({existing.name}, dim {existing.dim})")
        return True
    with _progress() as progress:
        task = progress.add_task("export", total=100)

        def on_stage(stage: str, fraction: float) -> None:
            progress.update(task, description=f"export: {stage}", completed=fraction * 100)

        try:
            if kind == "clip":
                from offline.export_clip import export_clip_model

                manifest = export_clip_model(
                    model, target, text_source=text_model, progress=on_stage
                )
            else:
                manifest = export_text_model(model, target, progress=on_stage)
        except ExportError as exc:
            console.print(f"[red]error:[/red] {exc}")
            return False
    parity = manifest.parity
    console.print(
        f"exported {manifest.name} to {target}: dim {manifest.dim}, "
        f"parity on {parity.sentences} sentences max|diff| {parity.max_abs_diff:.2e}, "
        f"min cosine {parity.min_cosine:.7f}"
    )
    if images := manifest.image_parity:
        console.print(
            f"image parity on {images.images} images max|diff| {images.max_abs_diff:.2e}, "
            f"min cosine {images.min_cosine:.7f}"
        )
    return True


@app.command()
def embed(
    model: Annotated[Path | None, typer.Option(help="Exported model folder.")] = None,
    text: Annotated[str | None, typer.Option(help="Text to embed.")] = None,
    image: Annotated[Path | None, typer.Option(help="Image file to embed (CLIP models).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Last line: the vector only.")] = False,
) -> None:
    """Print the normalised vector of one text or one image, as a JSON list on the last line."""
    from functions.core.errors import ServiceError
    from functions.core.models.clip_encoder import ClipEncoder
    from functions.core.models.loading import load_encoder

    if (text is None) == (image is None):
        raise _fail("give exactly one of --text and --image", 2)
    folder = model or Settings().resolved_model_dir
    try:
        encoder = load_encoder(folder)
        if image is None:
            vector = encoder.embed_texts([text or ""])[0]
        elif not isinstance(encoder, ClipEncoder):
            raise _fail(f"{encoder.name} embeds text only; export a CLIP model for images", 2)
        else:
            vector = encoder.embed_images([image.read_bytes()])[0]
    except (ServiceError, OSError) as exc:
        raise _fail(str(exc)) from None
    if not as_json:
        console.print(f"{encoder.name}: {len(vector)} dimensions, L2-normalised")
    print(json.dumps([float(v) for v in vector]))


@app.command()
def index(
    input: Annotated[Path, typer.Option(help="JSON lines file or BEIR folder.")],
    scene: Annotated[str, typer.Option(help="Scene to index into.")] = "qa",
    batch_size: Annotated[int, typer.Option(min=1, help="Documents per write.")] = 1000,
    strict: Annotated[bool, typer.Option(help="Stop if any record is invalid.")] = False,
    prune: Annotated[bool, typer.Option(help="Delete documents that left the input.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Last line: the report as JSON.")] = False,
    model: Annotated[
        Path | None,
        typer.Option(
            help="An extra exported model: its vectors go to the scene's collection for it, "
            "for match experiments naming it (model: <its name>)."
        ),
    ] = None,
    mode: Annotated[
        Literal["full", "upsert"],
        typer.Option(
            help="full: the input is the whole corpus (verified, --prune removes the rest); "
            "upsert: a delta written by id, costing only its own size (through the running "
            "`mmsearch serve` when one holds the home)."
        ),
    ] = "full",
    device: Annotated[
        Literal["cpu", "cuda", "auto"],
        typer.Option(
            help="Where to embed: cpu; cuda (onnxruntime-gpu's CUDA provider, refused "
            "without it); auto (cuda when available)."
        ),
    ] = "cpu",
    float16: Annotated[
        bool, typer.Option(help="Embed with float16 weights (for GPUs; CPUs gain nothing).")
    ] = False,
) -> None:
    """Embed a corpus and upsert it into Milvus and MongoDB, then verify both stores."""
    from offline.local_mongo import LocalMongoError, local_stores

    if mode == "upsert":
        if prune or model is not None or device != "cpu":
            raise _fail(
                "--mode upsert writes a delta: --prune, --model and --device need --mode full", 2
            )
        _index_delta(input, scene, strict, as_json)
        return
    from offline.remote import running_server

    if (url := running_server(Settings().home)) is not None:
        # Its stores are locked by that server: say so rather than fail on a lock.
        raise _fail(
            f"mmsearch serve ({url}) holds this home: stop it for a full run, or write a "
            "delta through it with --mode upsert",
            2,
        )
    if model is None and not _model_ready(Settings()):
        raise typer.Exit(1)

    try:
        with local_stores(_batch(Settings())) as settings:
            report = _index(
                settings,
                input,
                scene,
                batch_size,
                strict,
                prune,
                model=model,
                device=device,
                float16=float16,
            )
    except LocalMongoError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        print(json.dumps({**asdict(report), "docs_per_s": round(report.docs_per_s, 2)}))


def _index_delta(path: Path, scene_name: str, strict: bool, as_json: bool) -> None:
    """`index --mode upsert`: validate the delta, then write it by id (offline/delta.py)."""
    from functions.core.errors import ServiceError
    from functions.core.scenes import get_scene
    from indexing.corpus import read_corpus
    from offline import delta

    try:
        scene = get_scene(scene_name)
        if scene.kind == "image":
            raise _fail("--mode upsert takes text scenes; re-index image scenes in full", 2)
        corpus = read_corpus(path, scene)
    except (ServiceError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    for record in corpus.invalid[:20]:
        console.print(f"[yellow]line {record.line}:[/yellow] {record.reason}")
    if corpus.invalid and strict:
        raise _fail("--strict: nothing was written", 2)
    if not corpus.documents:
        raise _fail(f"{path} holds no valid record: nothing was written", 2)
    documents = [d.model_dump() for d in corpus.documents]
    with _delta_errors(), _progress() as progress:
        task = progress.add_task(f"upsert {scene_name}", total=len(documents))
        report = delta.upsert(
            Settings(), scene_name, documents, _on_batch(progress, task, len(documents))
        )
    console.print(
        f"upserted {report.input} documents into {report.scene} via {report.via} in "
        f"{report.seconds:.1f} s ({report.written} written, {report.unchanged} unchanged)"
    )
    if as_json:
        print(json.dumps(asdict(report)))


@app.command()
def delete(
    ids: Annotated[Path, typer.Option(help="A file of ids, one a line.")],
    scene: Annotated[str, typer.Option(help="Scene to delete from.")] = "qa",
    as_json: Annotated[bool, typer.Option("--json", help="Last line: the report as JSON.")] = False,
) -> None:
    """Delete documents by id from both stores (through the running `mmsearch serve` when one
    holds the home); ids not stored are counted as missing, not an error."""
    from functions.core.scenes import get_scene
    from offline import delta

    with _delta_errors():
        get_scene(scene)
        wanted = delta.read_ids(ids)
        if not wanted:
            raise _fail(f"{ids} holds no id: nothing was deleted", 2)
        report = delta.delete(Settings(), scene, wanted)
    console.print(
        f"deleted {report.deleted} documents from {report.scene} via {report.via} in "
        f"{report.seconds:.1f} s ({report.missing} not stored)"
    )
    if as_json:
        print(json.dumps(asdict(report)))


@app.command()
def migrate(
    scene: Annotated[str, typer.Option(help="Scene whose declared schema changed.")],
    batch_size: Annotated[int, typer.Option(min=1, help="Documents per write.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Last line: the report as JSON.")] = False,
) -> None:
    """Rebuild a scene's collection for its declared schema (a new filterable field, another
    type) from the stored documents into a new collection, verify it, switch the alias to it
    and drop the old one; searches answer from the old collection until the switch."""
    from functions.core.errors import ServiceError
    from functions.core.models.text_encoder import TextEncoder
    from functions.core.scenes import get_scene
    from functions.core.stores.aliases import open_aliases
    from functions.core.stores.factory import (
        collection_name,
        open_document_store,
        open_vector_store,
    )
    from indexing.migrate import MigrationError
    from indexing.migrate import migrate as migrate_scene
    from offline.local_mongo import LocalMongoError, local_stores
    from offline.remote import running_server

    if (url := running_server(Settings().home)) is not None:
        raise _fail(f"mmsearch serve ({url}) holds this home: stop it to migrate", 2)
    try:
        declared = get_scene(scene)
        with local_stores(_batch(Settings())) as settings:
            documents = open_document_store(settings)
            total = documents.count(declared.store)
            encoder = TextEncoder.load(
                settings.resolved_model_dir, threads=settings.encoder_threads, spin=False
            )
            with _progress() as progress:
                task = progress.add_task(f"migrate {declared.name}", total=total)
                report = migrate_scene(
                    declared,
                    collection_name(settings, declared),
                    encoder=encoder,
                    vectors=open_vector_store(settings),
                    documents=documents,
                    aliases=open_aliases(settings),
                    batch_size=batch_size,
                    progress=_on_batch(progress, task, total),
                )
    except MigrationError as exc:
        raise _fail(str(exc)) from None
    except ServiceError as exc:
        raise _fail(str(exc), 2 if exc.status < 500 else 1) from None
    except LocalMongoError as exc:
        raise _fail(str(exc)) from None
    console.print(
        f"migrated {report.documents} documents of {report.scene} from {report.previous} to "
        f"{report.collection} in {report.seconds:.1f} s ({report.copied} vectors copied, "
        f"{report.embedded} embedded); {report.alias} now names {report.collection}"
    )
    if as_json:
        print(json.dumps(asdict(report)))


@contextlib.contextmanager
def _delta_errors() -> Iterator[None]:
    """Refusals as exit 2 (fix the input), unreachable stores or servers as exit 1."""
    from functions.core.errors import ServiceError
    from offline.local_mongo import LocalMongoError
    from offline.remote import RemoteWriteError

    try:
        yield
    except RemoteWriteError as exc:
        raise _fail(str(exc), 2 if exc.status and exc.status < 500 else 1) from None
    except ServiceError as exc:
        raise _fail(str(exc), 2 if exc.status < 500 else 1) from None
    except (LocalMongoError, OSError) as exc:
        raise _fail(str(exc)) from None


def _on_batch(progress: Progress, task: TaskID, total: int) -> Callable[[int], None]:
    """Advances the bar; without a terminal (CI, a log file), where rich draws only the final
    bar, also prints a line per batch stored, one a second at most."""
    done, last = 0, 0.0

    def advance(size: int) -> None:
        nonlocal done, last
        done += size
        progress.advance(task, size)
        if not console.is_terminal and (time.monotonic() - last >= 1 or done == total):
            last = time.monotonic()
            console.print(f"stored {done}/{total}")

    return advance


def _read_images(settings: Settings, path: Path) -> Any:
    from indexing.image_corpus import check_images, read_image_corpus

    corpus = read_image_corpus(path)
    return check_images(corpus, settings.max_image_pixels)


def _index(
    settings: Settings,
    path: Path,
    scene_name: str,
    batch_size: int,
    strict: bool,
    prune: bool,
    *,
    model: Path | None = None,
    device: str = "cpu",
    float16: bool = False,
) -> IndexReport:
    from pymongo.errors import OperationFailure

    from functions.core.errors import ServiceError
    from functions.core.scenes import get_scene
    from functions.core.stores.factory import (
        collection_name,
        model_collection,
        open_document_store,
        open_vector_store,
    )
    from functions.search.spelling import count_terms, save_vocabulary
    from indexing.corpus import read_corpus
    from indexing.encoding import encode_batch_size, load_batch_encoder
    from indexing.indexer import Indexer, IndexVerificationError, IndexWriteError

    try:
        scene = get_scene(scene_name)
        corpus: Any = (
            read_corpus(path, scene) if scene.kind != "image" else _read_images(settings, path)
        )
    except (ServiceError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    for record in corpus.invalid[:20]:
        console.print(f"[yellow]line {record.line}:[/yellow] {record.reason}")
    if corpus.invalid:
        console.print(f"[yellow]{len(corpus.invalid)} invalid records[/yellow]")
        if strict:
            raise _fail("--strict: nothing was indexed", 2)
    if not corpus.documents:
        # A script must tell a failed load from a good one (the batch path fails alike).
        raise _fail(f"{path} holds no valid record: nothing was indexed", 2)
    if model is not None and scene.kind != "text":
        raise _fail("--model indexes text scenes; image scenes use their own image space", 2)
    try:
        encoder = load_batch_encoder(
            model or settings.resolved_model_dir,
            device,
            threads=settings.encoder_threads,
            float16=float16,
        )
    except ServiceError as exc:
        raise _fail(str(exc)) from None
    vectors, documents = open_vector_store(settings), open_document_store(settings)
    indexer = Indexer(
        encoder,
        vectors,
        documents,
        batch_size=batch_size,
        encode_batch_size=encode_batch_size(encoder, settings.encode_batch_size),
    )
    if scene.kind == "image":
        from functions.core.models.image_space import load_image_space
        from indexing.image_indexer import ImageIndexer
        from indexing.media import LocalMedia

        indexer = ImageIndexer(
            encoder,
            load_image_space(settings),
            vectors,
            documents,
            LocalMedia(settings.home / "media", settings.media_base_url),
            batch_size=min(batch_size, 64),
            encode_batch_size=settings.encode_batch_size,
        )
    try:
        with _progress() as progress:
            task = progress.add_task(f"index {scene.name}", total=len(corpus.documents))
            report = indexer.run(
                scene,
                model_collection(collection_name(settings, scene), encoder.name if model else None),
                corpus.documents,
                _on_batch(progress, task, len(corpus.documents)),
                prune=prune,
            )
        # The corpus's words, for search's "did you mean" (functions/search/spelling.py).
        save_vocabulary(
            documents,
            scene.store,
            count_terms(_vocabulary_texts(scene, corpus.documents)),
        )
    except (IndexVerificationError, IndexWriteError, ServiceError) as exc:
        raise _fail(str(exc)) from None
    except OperationFailure as exc:  # e.g. refused credentials; the reply names no secret
        raise _fail(f"MongoDB refused the run: {(exc.details or {}).get('errmsg', exc)}") from None
    finally:
        # Milvus clients share one connection per URI: closing here would close the server's.
        documents.close()
    console.print(
        f"indexed {report.input_docs} documents into {report.collection} in {report.seconds:.1f} s "
        f"({report.embedded} embedded, {report.skipped_unchanged} unchanged, "
        f"{report.pruned} pruned); "
        f"Milvus {report.vectors}, MongoDB {report.documents}"
    )
    return report


def _vocabulary_texts(scene: Any, documents: list[Any]) -> Iterator[str]:
    """The words a query may use: the embedded text, and the BM25 fields beside it (a Chinese
    dictionary's headwords and pinyin, which no embedded text holds)."""
    lexical = [f for f in scene.bm25_fields or () if f not in scene.text_fields]
    for document in documents:
        body = document.model_dump()
        yield scene.embedding_text(body)
        yield " ".join(str(body.get(f) or "") for f in lexical)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Run the three functions and the page in one local server."""
    from offline.local_mongo import local_stores

    with local_stores(Settings()) as settings:
        _serve(settings, host, port)


def _serve(settings: Settings, host: str, port: int) -> None:
    from functions.composed.app import create_app
    from functions.core.errors import ServiceError
    from offline.local_server import local_server
    from offline.remote import announce

    # CloudWatch EMF metric lines mean nothing on a laptop; POWERTOOLS_METRICS_DISABLED=false
    # prints them (one per layer per request), as Lambda does.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    if settings.debug_open is None and host.strip("[]") not in ("127.0.0.1", "localhost", "::1"):
        # Reachable from other machines: forcing experiments needs MMSEARCH_DEBUG_TOKEN.
        settings = settings.model_copy(update={"debug_open": False})
    if settings.writes is None and host.strip("[]") not in ("127.0.0.1", "localhost", "::1"):
        settings = settings.model_copy(update={"writes": False})  # MMSEARCH_WRITES=true opens
    from offline.warm import Warmup

    warmup = Warmup(settings, lambda line: console.print(line))
    try:
        asgi = create_app(settings, static_dir=FRONTEND_DIR, loading=warmup.pending)
    except ServiceError as exc:
        raise _fail(f"{exc}. Run `mmsearch export` (or `make demo`) first.") from None
    warmup.start()  # Milvus loads the collections while the server starts
    console.print(f"serving on [bold]http://{host}:{port}[/bold] (API docs at /docs)")
    if host.strip("[]") in ("0.0.0.0", "::") and not settings.allowed_hosts:
        console.print("only 127.0.0.1/localhost names are answered: set MMSEARCH_ALLOWED_HOSTS")
    # `index --mode upsert` and `delete` find this server here and write through its API.
    with announce(settings.home, host, port):
        local_server(asgi, settings, host, port).run()


@app.command("eval")
def evaluate(
    beir: Annotated[
        Path | None,
        typer.Option(help="One BEIR folder (corpus, queries, qrels); default: every labelled set."),
    ] = None,
    sets: Annotated[
        str,
        typer.Option(
            help="Labelled sets, comma-separated: scifact-train, climate-fever, wordnet, "
            "tuxpaint (those whose data is here)."
        ),
    ] = "scifact-train,climate-fever,wordnet,tuxpaint",
    split: Annotated[str, typer.Option(help="dev, test, or dev,test.")] = "dev,test",
    max_docs: Annotated[
        int,
        typer.Option(
            min=0,
            help="Cut each BEIR corpus to its judged documents plus random "
            "others up to this many (0: whole corpora).",
        ),
    ] = 0,
    wordnet_docs: Annotated[
        int, typer.Option(min=100, help="Synsets in the WordNet set's corpus sample.")
    ] = 10_000,
    calibrate: Annotated[
        bool, typer.Option(help="Fit the relevance tables on the dev splits and write them.")
    ] = False,
    top_k: Annotated[int, typer.Option(min=1, max=100)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Last line: one JSON object.")] = False,
    reference: Annotated[
        bool, typer.Option(help="--beir: also score sentence-transformers exact search.")
    ] = False,
    match: Annotated[
        str,
        typer.Option(help="--beir: dense, bm25, hybrid, or several comma-separated, or all."),
    ] = "dense",
    rank: Annotated[
        str | None, typer.Option(help="Rank experiment; default: the one with most traffic.")
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="Exported model folder; default: the configured one.")
    ] = None,
) -> None:
    """Every match mode on every labelled set (nDCG@10 per split, the served default marked),
    or with --beir one folder scored per match kind. Corpora are indexed into collections
    named after the set and kept, so a second run embeds nothing."""
    from functions.core.errors import ServiceError
    from offline.local_mongo import LocalMongoError

    base = _batch(Settings())
    if model is not None:
        base = base.model_copy(update={"model_dir": model})
    elif not _model_ready(base):
        raise typer.Exit(1)
    try:
        if beir is not None:
            _evaluate_folder(base, beir, top_k, as_json, reference, match, rank)
        else:
            _evaluate_sets(base, sets, split, max_docs, wordnet_docs, calibrate, as_json)
    except (ServiceError, LocalMongoError, FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None


def _model_ready(settings: Settings) -> bool:
    """The configured model is exported, or the packaged default is exported now."""
    if (settings.resolved_model_dir / "manifest.json").exists():
        return True
    if settings.model_dir is not None:
        console.print(
            f"[red]error:[/red] no exported model in {settings.model_dir}: run "
            f"`mmsearch export --out {settings.model_dir}`"
        )
        return False
    console.print(f"no model in {settings.resolved_model_dir}: exporting the packaged default")
    return _ensure_export(None, settings.resolved_model_dir, force=False)


def _evaluate_sets(
    base: Settings,
    sets: str,
    split: str,
    max_docs: int,
    wordnet_docs: int,
    calibrate: bool,
    as_json: bool,
) -> None:
    from functions.search.service import config_source
    from offline import eval_sets
    from offline.eval_table import calibrate as fit_tables
    from offline.eval_table import evaluate_all, load_sets
    from offline.local_mongo import local_stores

    names = [n.strip() for n in sets.split(",") if n.strip()]
    parts = [p.strip() for p in split.split(",") if p.strip()]
    if bad := [p for p in parts if p not in ("dev", "test", "all")]:
        raise _fail(f"unknown split {bad[0]!r}; one of: dev, test, all", 2)
    work = base.home / "eval"
    labelled = load_sets(names, work, wordnet_docs)
    if max_docs:
        labelled = [
            eval_sets.sliced(s, work, max_docs) if s.corpus.is_dir() and s.scene == "qa" else s
            for s in labelled
        ]
    if not labelled:
        raise _fail(f"none of the sets {names} can be built here", 2)
    config = config_source(base).get()
    with local_stores(base) as settings, _progress() as progress:
        tasks: dict[str, TaskID] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done)

        table, collected = evaluate_all(
            settings, config, labelled, splits=parts, progress=on_progress
        )
    print(table.render())
    for line in table.violations():
        console.print(f"[yellow]served default loses:[/yellow] {line}")
    result: dict[str, object] = {
        "model": _model_label(base.resolved_model_dir),
        "ndcg@10": table.rows,
        "served": table.served,
        "docs": table.docs,
        "queries": table.queries,
    }
    if calibrate:
        result["relevance"] = fit_tables(config, collected)
        console.print("relevance tables written (functions/search/relevance.json)")
    if as_json:
        print(json.dumps(result))


def _evaluate_folder(
    base: Settings,
    beir: Path,
    top_k: int,
    as_json: bool,
    reference: bool,
    match: str,
    rank: str | None,
) -> None:
    from functions.search.service import config_source
    from offline.evaluate import MATCH_KINDS, default_ranker, evaluate_reference, evaluate_search
    from offline.local_mongo import local_stores

    kinds = list(MATCH_KINDS) if match == "all" else [k.strip() for k in match.split(",")]
    if unknown := [k for k in kinds if k not in MATCH_KINDS]:
        raise _fail(f"unknown match kind {unknown[0]!r}; one of: {', '.join(MATCH_KINDS)}", 2)
    config = config_source(base).get()
    ranker = rank or default_ranker(config.scenes["qa"])
    with local_stores(base) as settings, _progress() as progress:
        tasks: dict[str, TaskID] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done)

        by_kind = evaluate_search(
            settings,
            beir,
            top_k=top_k,
            matches=kinds,
            rank_experiment=ranker,
            config=config,
            progress=on_progress,
        )
    # The first kind's figures at the top level; every kind under "by_match".
    result: dict[str, object] = {
        **by_kind[kinds[0]].as_json(),
        "match": kinds[0],
        "rank": ranker,
        "model": _model_label(settings.resolved_model_dir),
        "by_match": {kind: metrics.as_json() for kind, metrics in by_kind.items()},
    }
    if reference:
        from functions.core.models.manifest import ModelManifest
        from offline.export import source_of

        source = source_of(ModelManifest.read(settings.resolved_model_dir))
        result["reference"] = evaluate_reference(source, beir, top_k=top_k).as_json()
    if as_json:
        print(json.dumps(result))
    else:
        console.print_json(json.dumps(result))


@app.command()
def train(
    pairs: Annotated[
        Path, typer.Option(help="JSON lines {query, positive[, negative]} or a BEIR folder.")
    ],
    out: Annotated[Path, typer.Option(help="Where the trained sentence-transformers folder goes.")],
    base: Annotated[
        str | None, typer.Option(help="Local sentence-transformers folder; default: packaged.")
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Most epochs (early stopping may cut).")] = 3,
    batch_size: Annotated[int, typer.Option(min=2, help="Pairs a batch.")] = 32,
    learning_rate: Annotated[float, typer.Option(min=0)] = 2e-5,
    max_seq_length: Annotated[int, typer.Option(min=8, max=512)] = 256,
    validation: Annotated[float, typer.Option(help="Share of the queries held out.")] = 0.2,
    patience: Annotated[int, typer.Option(min=1, help="Epochs without improvement.")] = 1,
    hard_negatives: Annotated[
        bool, typer.Option(help="Add the base model's best wrong hit to each pair.")
    ] = False,
    seed: Annotated[int, typer.Option()] = 13,
    as_json: Annotated[bool, typer.Option("--json", help="Last line: the report as JSON.")] = False,
) -> None:
    """Fine-tune a sentence encoder on your pairs (MultipleNegativesRankingLoss), scoring
    nDCG@10 on held-out queries before and after every epoch; keeps the best epoch."""
    from offline.train import TrainConfig
    from offline.train import train as run_training
    from offline.training_data import PairsError, read_training_data

    try:
        data = read_training_data(pairs, validation=validation, seed=seed)
    except PairsError as exc:
        raise _fail(str(exc), 2) from None
    config = TrainConfig(
        out=out,
        base=base,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_seq_length=max_seq_length,
        patience=patience,
        hard_negatives=hard_negatives,
        seed=seed,
    )
    report = run_training(data, config, progress=lambda line: console.print(f"train: {line}"))
    console.print(report.table())
    console.print(
        f"next: mmsearch export --model {out} --out <models>/{out.name}; then "
        f"mmsearch index --model <models>/{out.name} and an experiment with model: {out.name}"
    )
    if as_json:
        from dataclasses import asdict as as_dict

        print(json.dumps(as_dict(report)))


def _model_label(folder: Path) -> str:
    """An exported model's name and content version (as push-model names versions)."""
    from functions.core.models.manifest import ModelManifest
    from offline.model_push import model_version

    manifest = ModelManifest.read(folder)
    return f"{manifest.name}@{model_version(manifest)}"


def _demo_images(settings: Settings) -> Path | None:
    """Tux Paint's captioned stamps as a JSON-lines corpus, if Debian's package is there."""
    from indexing.image_corpus import TUXPAINT_STAMPS, tuxpaint_corpus, write_jsonl

    if not TUXPAINT_STAMPS.is_dir():
        console.print(
            "[yellow]no demo images: install Debian's tuxpaint-stamps-default (make does)"
        )
        return None
    path = settings.home / "corpora" / "tuxpaint.jsonl"
    write_jsonl(tuxpaint_corpus(TUXPAINT_STAMPS), path)
    return path


# The entries of the HSK 3.0 word list (11,833) and the next in the file: ~80 s of indexing
# on a quiet 2-core machine (all 118,961: ~13 min).
ZH_DEMO_DOCS = 12_000


def _demo_dictionary(settings: Settings, limit: int) -> Path | None:
    """CC-CEDICT's most common entries as a JSON-lines corpus, if the package is installed."""
    from indexing.cedict import CedictMissing, ensure_cedict_corpus

    try:
        name = f"cedict-{limit or 'all'}.jsonl"
        return ensure_cedict_corpus(settings.home / "corpora" / name, limit=limit or None)
    except CedictMissing as exc:
        console.print(f"[yellow]no Chinese dictionary scene: {exc}")
        return None


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    docs: Annotated[
        int, typer.Option(min=0, help="Most familiar WordNet synsets to index (0: all 117,659).")
    ] = 50_000,
    zh_docs: Annotated[
        int,
        typer.Option(
            min=0,
            help="Most common CC-CEDICT entries for the Chinese dictionary scene, HSK 3.0 words "
            "first (0: all 118,961).",
        ),
    ] = ZH_DEMO_DOCS,
    no_serve: Annotated[bool, typer.Option(help="Build everything, do not serve.")] = False,
) -> None:
    """Export the default model, index the WordNet demo corpus, the Tux Paint stamps and the
    CC-CEDICT Chinese-English dictionary, serve the page."""
    from offline.demo_corpus import DemoCorpusMissing, ensure_demo_corpus
    from offline.local_mongo import local_stores

    base = Settings()
    if not _ensure_export(None, base.resolved_model_dir, force=False):
        raise typer.Exit(1)
    try:
        name = f"wordnet-{docs or 'all'}.jsonl"
        corpus = ensure_demo_corpus(base.home / "corpora" / name, limit=docs or None)
    except DemoCorpusMissing as exc:
        raise _fail(str(exc)) from None
    with local_stores(base) as settings:
        _index(_batch(settings), corpus, "qa", batch_size=256, strict=True, prune=True)
        images = _demo_images(base)
        if images is not None:
            _index(_batch(settings), images, "t2i", batch_size=64, strict=False, prune=True)
        dictionary = _demo_dictionary(base, zh_docs)
        if dictionary is not None:
            _index(_batch(settings), dictionary, "zh", batch_size=256, strict=True, prune=True)
        if not no_serve:
            _serve(settings, "127.0.0.1", port)


@app.command()
def bench(
    quick: Annotated[bool, typer.Option(help="Reduced suite (under 5 minutes).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Last line: one JSON object.")] = False,
    docs: Annotated[int | None, typer.Option(min=100, help="Real documents to index.")] = None,
    out: Annotated[Path, typer.Option(help="Where results are written.")] = Path("bench/results"),
    scale: Annotated[
        list[int] | None, typer.Option(help="Synthetic corpus sizes (default 100k and 1M).")
    ] = None,
    peers: Annotated[bool, typer.Option(help="Measure txtai and both Milvus Lite engines.")] = True,
    quality: Annotated[
        Path | None,
        typer.Option(help="BEIR folder scored dense / bm25 / hybrid (default: SciFact train)."),
    ] = None,
    no_quality: Annotated[bool, typer.Option(help="Skip the quality row.")] = False,
) -> None:
    """Measure speed, cold start, scale, quality and the alternatives in one run."""
    from offline.bench.report import markdown
    from offline.bench.runner import BenchPlan, run_bench

    settings = Settings()
    if not _ensure_export(None, settings.resolved_model_dir, force=False):
        raise typer.Exit(1)
    from offline.bench.runner import SCIFACT

    plan = BenchPlan.make(
        quick,
        docs,
        tuple(scale) if scale else None,
        peers,
        None if no_quality else quality or SCIFACT,
    )
    out.mkdir(parents=True, exist_ok=True)
    name = "quick" if quick else "latest"
    partial = out / f"{name}.partial.json"
    results = run_bench(
        plan,
        settings.home / "bench",
        settings.resolved_model_dir,
        lambda step: console.print(f"[bold]bench:[/bold] {step}"),
        lambda so_far: partial.write_text(json.dumps(so_far, indent=2) + "\n"),
    )
    partial.unlink(missing_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / f"{name}.md").write_text(markdown(results))
    console.print(markdown(results))
    if as_json:
        print(json.dumps(results))


@app.command("push-model")
def push_model(
    model_dir: Annotated[Path, typer.Option(help="Exported model folder (mmsearch export).")],
    bucket: Annotated[str, typer.Option(help="S3 bucket.")],
    prefix: Annotated[str, typer.Option(help="Key prefix above <name>/<version>/.")] = "models",
    version: Annotated[str | None, typer.Option(help="Default: a hash of the files.")] = None,
) -> None:
    """Upload an exported model to S3 as a new version and point <name>/LATEST at it."""
    from offline.model_push import push_model as push

    try:
        console.print(push(model_dir, bucket, prefix=prefix, version=version).describe())
    except Exception as exc:  # unverifiable folder, existing version, S3 refusal
        raise _fail(str(exc)) from exc


def main() -> None:
    """Entry point of the `mmsearch` script."""
    # SIGTERM unwinds like Ctrl-C, so the local stores are stopped cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    app()


if __name__ == "__main__":
    main()
