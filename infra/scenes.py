"""A deployment's own scenes (`-c scenes_file=path/to/scenes.yaml`).

The file is checked at synth by the loader every function runs (`functions.core.scenes`), so a
file the functions would refuse never deploys; it is shipped inside every bundle and the
processing image at one relative path, and MMSEARCH_SCENES_FILE names it where each runs. The
page lists the scenes from `GET /v1/scenes` at run time, so it needs nothing from here.
"""

from __future__ import annotations

from pathlib import Path

from functions.core.scenes import SCENES_FILE_ENV, Scene, SceneConfigError, parse_scenes

# Where the file sits in a bundle (and in the processing image), relative to the code root.
BUNDLED_SCENES = "functions/deployed_scenes.yaml"
LAMBDA_CODE_ROOT = "/var/task"  # LAMBDA_TASK_ROOT of the python3.12 runtime
PROCESSING_CODE_ROOT = "/opt/mmsearch"  # indexing/batch/Dockerfile's WORKDIR


def check_scenes_file(path: str | Path) -> dict[str, Scene]:
    """The scenes `path` declares; `SceneConfigError` with the loader's own message if not."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SceneConfigError(f"{file}: cannot read the scene configuration ({exc})") from None
    return parse_scenes(text, str(file))


def scenes_environment(
    scenes_file: str | None, code_root: str = LAMBDA_CODE_ROOT
) -> dict[str, str]:
    """MMSEARCH_SCENES_FILE for code unpacked at `code_root`; {} without a scenes file (the
    functions then read their packaged scenes)."""
    if not scenes_file:
        return {}
    return {SCENES_FILE_ENV: f"{code_root}/{BUNDLED_SCENES}"}
