"""A clone under any folder name runs its tests (ComfyUI-Manager and the README use hyphenated names).

The repository root is itself the package (ComfyUI imports it by path), so pytest sees an
``__init__.py`` there. A folder name that is not a Python identifier once made every test error
at collection; this clones the committed tree into such folders and runs a test there.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import llm_assist

REPO = Path(llm_assist.__file__).resolve().parent


@pytest.mark.parametrize("name", ["comfyui-llm-assist", "ComfyUI-LLM-Assist", "llm_assist"])
def test_clone_under_folder_name_collects_and_runs(tmp_path, name):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout")
    clone = tmp_path / name
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=60)
    # the working tree's own version of the files that decide collection, committed or not
    for rel in ("__init__.py", "pyproject.toml", "tests/conftest.py", "tests/test_contract.py"):
        shutil.copy2(REPO / rel, clone / rel)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests/test_contract.py"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=240,
    )
    tail = (result.stdout + result.stderr)[-2000:]
    assert result.returncode == 0, tail
    assert " passed" in result.stdout and "error" not in result.stdout.lower().split("passed")[-1], tail
