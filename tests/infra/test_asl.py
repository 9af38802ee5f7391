"""The indexing state machine's definition, as synthesized in every variant, checked by the npm
`asl-validator` (pinned in infra/package.json): the Amazon States Language schema, state
transitions and JSONPath expressions, which CloudFormation itself only checks at deploy."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import VARIANTS, Synth

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = ROOT / "infra" / "node_modules" / ".bin" / "asl-validator"
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::AccountId": "123456789012",
    "AWS::Region": "us-east-1",
    "AWS::URLSuffix": "amazonaws.com",
}


def resolve(value: Any) -> Any:
    """CloudFormation intrinsics in a definition, replaced by plausible plain values (an ARN
    for every GetAtt, since the definition only ever calls or passes ARNs)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return [resolve(v) for v in value]
    ((function, argument),) = value.items()
    if function == "Ref":
        return PSEUDO.get(argument, f"ref-{argument}")
    if function == "Fn::GetAtt":
        return f"arn:aws:lambda:us-east-1:123456789012:function:{argument[0]}"
    if function == "Fn::Join":
        return argument[0].join(resolve(part) for part in argument[1])
    if function == "Fn::Sub":
        text = argument if isinstance(argument, str) else argument[0]
        return re.sub(r"\$\{([^}]+)\}", lambda m: PSEUDO.get(m[1], f"sub-{m[1]}"), text)
    if function == "Fn::Select":
        return resolve(argument[1])[argument[0]]
    if function == "Fn::Split":
        return resolve(argument[1]).split(argument[0])
    if function == "Fn::ImportValue":
        return f"imported-{resolve(argument)}"
    raise AssertionError(f"unexpected intrinsic {function}")


def definition(synth: Synth) -> dict[str, Any]:
    machines = synth.templates["indexing"].find_resources("AWS::StepFunctions::StateMachine")
    (machine,) = machines.values()
    parsed: dict[str, Any] = json.loads(resolve(machine["Properties"]["DefinitionString"]))
    return parsed


def validate(document: dict[str, Any], tmp: Path) -> subprocess.CompletedProcess[str]:
    if not VALIDATOR.exists():
        pytest.fail("asl-validator is missing: `make test` installs it (npm ci --prefix infra)")
    path = tmp / "definition.json"
    path.write_text(json.dumps(document))
    return subprocess.run(
        [str(VALIDATOR), "--json-path", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_indexing_state_machine_is_valid_asl(
    synthesized: dict[str, Synth], variant: str, tmp_path: Path
) -> None:
    document = definition(synthesized[variant])
    done = validate(document, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "✓" in done.stdout or "valid" in done.stdout.lower(), done.stdout


def test_the_validator_refuses_a_transition_to_a_missing_state(
    synthesized: dict[str, Synth], tmp_path: Path
) -> None:
    """The check can fail: the same definition with one `Next` pointing nowhere."""
    document = definition(synthesized["split"])
    validate_state = document["States"][document["StartAt"]]
    validate_state["Next"] = "NoSuchState"
    done = validate(document, tmp_path)
    assert done.returncode != 0, done.stdout


def test_the_validator_refuses_a_map_without_its_item_processor(
    synthesized: dict[str, Synth], tmp_path: Path
) -> None:
    document = definition(synthesized["one"])
    maps = [s for s in document["States"].values() if s["Type"] == "Map"]
    assert len(maps) == 2  # Lambda and SageMaker: both engines
    del maps[0]["ItemProcessor"]
    done = validate(document, tmp_path)
    assert done.returncode != 0, done.stdout
