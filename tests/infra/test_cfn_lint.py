"""cfn-lint (AWS's CloudFormation linter: resource schemas, allowed values, references) on every
template of every synthesized variant: no error, and no warning other than those listed with
their reason in infra/cfn-lint.yaml."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.conftest import VARIANTS, Synth

ROOT = Path(__file__).resolve().parents[2]
IGNORED = ROOT / "infra" / "cfn-lint.yaml"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"


def ignored_rules() -> dict[str, str]:
    rules: dict[str, str] = yaml.safe_load(IGNORED.read_text())["ignore"]
    return rules


def lint(templates: list[Path]) -> list[dict[str, Any]]:
    """cfn-lint's findings on `templates` (JSON output), the ignored rules left out."""
    done = subprocess.run(
        [
            str(CFN_LINT),
            "--format",
            "json",
            "--ignore-checks",
            *ignored_rules(),
            "--",
            *map(str, templates),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 2, 4, 6, 8, 10, 12, 14), done.stderr  # bit flags, not crashes
    findings: list[dict[str, Any]] = json.loads(done.stdout or "[]")
    return findings


def test_every_ignored_rule_carries_its_reason() -> None:
    rules = ignored_rules()
    assert rules, "an empty ignore list needs no file"
    for rule, reason in rules.items():
        assert rule[0] in "WI" and rule[1:].isdigit(), f"{rule}: only warnings may be ignored"
        assert len(reason.split()) >= 12, f"{rule}: say why it is fine"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_template_passes_cfn_lint(synthesized: dict[str, Synth], variant: str) -> None:
    templates = sorted(synthesized[variant].outdir.glob("*.template.json"))
    assert len(templates) == 5
    findings = lint(templates)
    assert not findings, "\n".join(
        f"{f['Rule']['Id']} {Path(f['Filename']).name}:{f['Location']['Start']['LineNumber']}"
        f" {f['Message']}"
        for f in findings
    )


def test_cfn_lint_reports_an_invalid_template(tmp_path: Path) -> None:
    """The check can fail: a function with a runtime Lambda does not have and a log group
    with a retention CloudWatch does not offer."""
    template = {
        "Resources": {
            "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 31}},
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Runtime": "python2.1",
                    "Handler": "h.handler",
                    "Role": "arn:aws:iam::123456789012:role/r",
                    "Code": {"ZipFile": "def handler(e, c): return e"},
                },
            },
        }
    }
    path = tmp_path / "broken.template.json"
    path.write_text(json.dumps(template))
    rules = {f["Rule"]["Id"] for f in lint([path])}
    assert {r for r in rules if r.startswith("E")}, rules
