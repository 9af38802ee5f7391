"""Audit requirements.lock with pip-audit (PyPI's vulnerability data) and judge the result.

Exit 1 on any known vulnerability with a fix that .ci/audit-ignore.txt does not name; a
vulnerability without a fix is listed, not failed on. Packages pip-audit could not look up
(PyPI's per-release JSON API unreachable) are never a silent pass: exit 2 with a message, or
with `--unreachable warn` (what `make test` uses) the same message and exit 0.

    python .ci/audit.py [--lock requirements.lock] [--unreachable fail|warn] [--report JSON]
                        [--ignore-file .ci/audit-ignore.txt]

`--report` judges a saved `pip-audit --format json` report instead of running pip-audit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
IGNORE_FILE = HERE / "audit-ignore.txt"
UNREACHABLE = 2


def ignored(path: Path = IGNORE_FILE) -> dict[str, str]:
    """Vulnerability id to the written reason it is accepted; a line without a reason is refused."""
    entries = {}
    for number, raw in enumerate(path.read_text().splitlines() if path.exists() else [], 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        vuln_id, _, reason = line.partition(" ")
        if not reason.strip():
            sys.exit(f"{path.name}:{number}: {vuln_id} needs a reason after the id")
        entries[vuln_id] = reason.strip()
    return entries


def run_pip_audit(lock: Path, ignore: dict[str, str]) -> dict[str, Any] | None:
    """pip-audit's JSON report on the fully pinned lock, or None if it could not run."""
    command = [sys.executable, "-m", "pip_audit", "-r", str(lock), "--no-deps", "--disable-pip"]
    command += ["--format", "json", "--progress-spinner", "off"]
    for vuln_id in ignore:
        command += ["--ignore-vuln", vuln_id]
    done = subprocess.run(command, capture_output=True, text=True)
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        print(f"pip-audit did not produce a report: {tail[0]}", file=sys.stderr)
        return None
    return report


def judge(report: dict[str, Any] | None, ignore: dict[str, str], unreachable: str) -> int:
    """Print the verdict; the exit status."""
    dependencies = report.get("dependencies", []) if report else []
    skipped = [d for d in dependencies if d.get("skip_reason")]
    fixable, unfixed = [], []
    for dep in dependencies:
        for vuln in dep.get("vulns", []):
            if vuln["id"] in ignore:
                continue
            row = f"{dep['name']} {dep['version']}: {vuln['id']}"
            if vuln.get("fix_versions"):
                fixable.append(f"{row}, fixed in {', '.join(vuln['fix_versions'])}")
            else:
                unfixed.append(f"{row}, no fix released")
    for vuln_id, reason in ignore.items():
        print(f"accepted {vuln_id}: {reason}")
    for row in unfixed:
        print(f"known vulnerability without a fix: {row}")
    for row in fixable:
        print(f"VULNERABLE: {row}")
    if fixable:
        print(f"{len(fixable)} known vulnerabilities have a fix: raise those pins (make lock)")
        return 1
    if report is None or skipped:
        what = f"{len(skipped)} of {len(dependencies)}" if report else "any of the"
        reason = skipped[0]["skip_reason"] if skipped else "pip-audit failed"
        print(
            f"AUDIT NOT DONE for {what} pinned packages: PyPI's vulnerability API"
            f" (https://pypi.org/pypi/<name>/<version>/json) did not answer ({reason}).",
            file=sys.stderr,
        )
        return 0 if unreachable == "warn" else UNREACHABLE
    print(f"no known vulnerability with a fix in {len(dependencies)} pinned packages")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=HERE.parent / "requirements.lock")
    parser.add_argument("--unreachable", choices=["fail", "warn"], default="fail")
    parser.add_argument("--report", type=Path, help="a saved pip-audit JSON report to judge")
    parser.add_argument("--ignore-file", type=Path, default=IGNORE_FILE)
    args = parser.parse_args()
    ignore = ignored(args.ignore_file)
    if args.report:
        report = json.loads(args.report.read_text())
    else:
        report = run_pip_audit(args.lock, ignore)
    sys.exit(judge(report, ignore, args.unreachable))


if __name__ == "__main__":
    main()
