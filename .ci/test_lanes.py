"""Run the test groups as two lanes side by side: each lane runs its groups one after another,
each group one pytest process (one process for the whole suite grew past 9 GB), with its own
temporary folder. A group's output is printed whole when it ends, so the lanes never
interleave lines. Exits 1 when any group fails.

Two lanes on two cores: each pytest process spends much of its time waiting on the stores,
the browser or a CDK synth, so the lanes overlap rather than halve each other's speed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Balanced by measured wall time (2026-12-02): functions ~500 s + security ~80 s + the two
# single files, against infra + offline ~850 s + frontend ~120 s.
LANES = [
    [
        ["tests/functions"],
        ["tests/security", "tests/test_dependency_audit.py", "tests/test_secrets.py"],
    ],
    [["tests/infra", "tests/offline"], ["tests/frontend"]],
]
_print = threading.Lock()


def run_lane(number: int, groups: list[list[str]], python: str, failed: list[str]) -> None:
    for index, group in enumerate(groups):
        name = " ".join(group)
        basetemp = ROOT / "build" / "pytest" / f"lane{number}-{index}"
        basetemp.parent.mkdir(parents=True, exist_ok=True)  # pytest makes only the last part
        started = time.monotonic()
        result = subprocess.run(
            [python, "-m", "pytest", *group, f"--basetemp={basetemp}", "-p", "no:cacheprovider"],
            cwd=ROOT,
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        seconds = time.monotonic() - started
        with _print:
            print(f"== pytest {name} (lane {number}, {seconds:.0f} s, exit {result.returncode})")
            print(result.stdout, flush=True)
        if result.returncode != 0:
            failed.append(name)


def main() -> int:
    python = sys.argv[1] if len(sys.argv) > 1 else sys.executable
    failed: list[str] = []
    started = time.monotonic()
    lanes = [
        threading.Thread(target=run_lane, args=(number, groups, python, failed))
        for number, groups in enumerate(LANES, start=1)
    ]
    for lane in lanes:
        lane.start()
    for lane in lanes:
        lane.join()
    print(f"== all groups: {time.monotonic() - started:.0f} s, failed: {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
