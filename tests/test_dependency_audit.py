"""requirements.lock pins what mmsearch[dev] installs, and the audit's verdicts: a fixable
vulnerability fails, one without a fix is listed, an unanswered audit is never a silent pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"


def _pins(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_the_lock_pins_exactly_what_the_dev_extra_installs() -> None:
    written = subprocess.run(
        [sys.executable, ROOT / ".ci" / "lock.py"], capture_output=True, text=True, check=True
    ).stdout
    assert _pins(written) == _pins(LOCK.read_text()), "requirements.lock is stale: run make lock"
    assert "torch==2.13.0" in _pins(written)  # the CPU wheel's local label is dropped


def _judge(
    tmp_path: Path, dependencies: list[dict[str, Any]], *flags: str, ignore: str = ""
) -> subprocess.CompletedProcess[str]:
    report, ignore_file = tmp_path / "report.json", tmp_path / "ignore.txt"
    report.write_text(json.dumps({"dependencies": dependencies, "fixes": []}))
    ignore_file.write_text(ignore)
    command = [sys.executable, ROOT / ".ci" / "audit.py", "--report", report]
    return subprocess.run(
        [*command, "--ignore-file", ignore_file, *flags], capture_output=True, text=True
    )


CLEAN = {"name": "six", "version": "1.17.0", "vulns": []}
FIXABLE = {
    "name": "jinja2",
    "version": "2.4.1",
    "vulns": [{"id": "PYSEC-2019-217", "fix_versions": ["2.10.1"], "aliases": []}],
}
UNFIXED = {
    "name": "somepkg",
    "version": "1.0",
    "vulns": [{"id": "GHSA-xxxx-yyyy-zzzz", "fix_versions": [], "aliases": []}],
}


def test_a_vulnerability_with_a_fix_fails_the_audit(tmp_path: Path) -> None:
    result = _judge(tmp_path, [CLEAN, FIXABLE], "--unreachable", "warn")
    assert result.returncode == 1
    assert "VULNERABLE: jinja2 2.4.1: PYSEC-2019-217, fixed in 2.10.1" in result.stdout


def test_a_vulnerability_without_a_fix_is_listed_not_failed(tmp_path: Path) -> None:
    result = _judge(tmp_path, [CLEAN, UNFIXED])
    assert result.returncode == 0
    assert "without a fix: somepkg 1.0: GHSA-xxxx-yyyy-zzzz" in result.stdout


def test_an_accepted_vulnerability_passes_only_with_a_written_reason(tmp_path: Path) -> None:
    accepted = _judge(tmp_path, [FIXABLE], ignore="PYSEC-2019-217 pinned: see pyproject\n")
    assert accepted.returncode == 0
    assert "accepted PYSEC-2019-217: pinned: see pyproject" in accepted.stdout
    bare = _judge(tmp_path, [FIXABLE], ignore="# comment\nPYSEC-2019-217\n")
    assert bare.returncode == 1 and "ignore.txt:2: PYSEC-2019-217 needs a reason" in bare.stderr


def test_packages_the_audit_could_not_look_up_are_never_a_silent_pass(tmp_path: Path) -> None:
    skipped = {"name": "six", "skip_reason": "Dependency not found on PyPI: six (1.17.0)"}
    failing = _judge(tmp_path, [CLEAN, skipped])
    assert failing.returncode == 2
    assert "AUDIT NOT DONE for 1 of 2 pinned packages" in failing.stderr
    warned = _judge(tmp_path, [CLEAN, skipped], "--unreachable", "warn")
    assert warned.returncode == 0 and "AUDIT NOT DONE" in warned.stderr
    # A finding still fails when other packages could not be looked up.
    assert _judge(tmp_path, [FIXABLE, skipped], "--unreachable", "warn").returncode == 1


def test_the_real_audit_without_a_network_says_it_was_not_done(tmp_path: Path) -> None:
    lock = tmp_path / "two.lock"
    lock.write_text("six==1.17.0\njinja2==2.4.1\n")
    # Every request goes to a proxy that is not there.
    closed = "http://127.0.0.1:9"
    unreachable = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
    unreachable |= {"HTTPS_PROXY": closed, "https_proxy": closed}
    result = subprocess.run(
        [sys.executable, ROOT / ".ci" / "audit.py", "--lock", lock],
        capture_output=True,
        text=True,
        env=unreachable,
    )
    assert result.returncode == 2
    assert "AUDIT NOT DONE for any of the pinned packages" in result.stderr
