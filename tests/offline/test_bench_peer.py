"""The txtai peer: the workload embeds exactly mmsearch's text, and a failed peer run is
reported as an error result, never raised. Nothing here needs the txtai venv."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from functions.core.scenes import QA
from offline.bench import txtai_workload
from offline.bench.peer import WORKLOAD, measure_txtai

RECORDS: list[dict[str, Any]] = [
    {"id": "1", "question": "entity", "answer": "that which exists", "category": ["noun"]},
    {"id": "2", "question": "  padded  ", "answer": "\tspaced answer \n", "category": []},
    {"id": "3", "question": "", "answer": "only an answer", "category": ["verb"]},
    {"id": "4", "question": "only a question", "answer": None, "category": None},
    {"id": "5", "question": "   ", "answer": "blank question"},
    {"id": "6", "answer": "no question field"},
]


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "fake_workload.py"
    path.write_text(body)
    return path


def _measure(tmp_path: Path, workload: Path, timeout_s: float = 60) -> dict[str, object]:
    return measure_txtai(
        tmp_path / "corpus.jsonl",
        ["first query", "second\nquery  spans lines"],
        tmp_path / "model",
        tmp_path / "work",
        timeout_s,
        python=Path(sys.executable),
        workload=workload,
    )


def test_workload_text_is_mmsearch_qa_embedding_text() -> None:
    for record in RECORDS:
        assert txtai_workload.embedding_text(record) == QA.embedding_text(record), record


def test_workload_indexes_the_embedding_text_and_stores_the_whole_document() -> None:
    rows = list(txtai_workload.index_rows(RECORDS))
    assert [uid for uid, _ in rows] == [r["id"] for r in RECORDS]
    for (_, row), record in zip(rows, RECORDS, strict=True):
        assert row["text"] == QA.embedding_text(record)
        assert {k: v for k, v in row.items() if k != "text"} == record


def test_workload_reads_corpus_and_queries_skipping_blank_lines(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps(r) for r in RECORDS[:2]) + "\n\n")
    queries = tmp_path / "queries.txt"
    queries.write_text("a hinged blind\n\n  a small locomotive \n")
    assert txtai_workload.read_corpus(corpus) == RECORDS[:2]
    assert txtai_workload.read_queries(queries) == ["a hinged blind", "a small locomotive"]


def test_workload_parses_its_command_line() -> None:
    args = txtai_workload.parse_args(
        ["--corpus", "c.jsonl", "--queries", "q.txt", "--model", "m", "--json"]
    )
    assert (args.corpus, args.queries, args.model) == (Path("c.jsonl"), Path("q.txt"), Path("m"))
    assert args.json is True
    assert args.threads == 0


def test_workload_requires_corpus_queries_and_model() -> None:
    with pytest.raises(SystemExit):
        txtai_workload.parse_args(["--corpus", "c.jsonl", "--queries", "q.txt"])


def test_workload_imports_without_txtai_or_torch() -> None:
    probe = (
        "import sys, offline.bench.txtai_workload\n"
        "print('txtai' in sys.modules, 'torch' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["False", "False"]


def test_workload_percentiles_interpolate() -> None:
    values = [float(v) for v in range(1, 101)]
    assert txtai_workload.percentile(values, 50) == pytest.approx(50.5)
    assert txtai_workload.percentile(values, 95) == pytest.approx(95.05)


def test_measure_returns_the_last_json_line_and_passes_queries_one_per_line(
    tmp_path: Path,
) -> None:
    echo = _script(
        tmp_path,
        "import json, sys\n"
        "args = sys.argv[1:]\n"
        "queries = open(args[args.index('--queries') + 1]).read().splitlines()\n"
        "print('progress noise')\n"
        "print(json.dumps({'peer': 'txtai 0', 'args': args, 'queries': queries}))\n",
    )
    result = _measure(tmp_path, echo)
    assert result["peer"] == "txtai 0"
    assert result["queries"] == ["first query", "second query spans lines"]
    args = result["args"]
    assert isinstance(args, list)
    assert args[args.index("--model") + 1] == str(tmp_path / "model")
    assert "--json" in args


def test_measure_reports_a_missing_python_as_an_error(tmp_path: Path) -> None:
    result = measure_txtai(
        tmp_path / "corpus.jsonl",
        ["q"],
        tmp_path / "model",
        tmp_path / "work",
        python=tmp_path / "no-venv" / "bin" / "python",
    )
    assert result["peer"] == "txtai"
    assert "cannot run" in str(result["error"])


def test_measure_reports_a_venv_that_cannot_be_created_as_an_error(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "work"
    not_a_folder.write_text("a file where the venv folder should go")
    result = measure_txtai(tmp_path / "corpus.jsonl", ["q"], tmp_path / "model", not_a_folder)
    assert result["peer"] == "txtai"
    assert "txtai venv" in str(result["error"])


def test_measure_reports_a_failing_workload_with_its_exit_code_and_stderr(tmp_path: Path) -> None:
    failing = _script(
        tmp_path, "import sys\nsys.stderr.write('model folder missing')\nsys.exit(3)\n"
    )
    result = _measure(tmp_path, failing)
    assert result["peer"] == "txtai"
    assert "exited 3" in str(result["error"])
    assert "model folder missing" in str(result["error"])


def test_measure_reports_output_that_is_not_json_as_an_error(tmp_path: Path) -> None:
    result = _measure(tmp_path, _script(tmp_path, "print('done')\n"))
    assert "not JSON" in str(result["error"])


def test_measure_reports_a_workload_past_its_timeout_as_an_error(tmp_path: Path) -> None:
    result = _measure(tmp_path, _script(tmp_path, "import time\ntime.sleep(30)\n"), timeout_s=1)
    assert "ran past" in str(result["error"])


def test_real_workload_without_txtai_is_an_error_not_an_exception(tmp_path: Path) -> None:
    # The project's venv has no txtai, so the real workload fails at its lazy import.
    result = _measure(tmp_path, WORKLOAD)
    assert result["peer"] == "txtai"
    assert "No module named" in str(result["error"])
