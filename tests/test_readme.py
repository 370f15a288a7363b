"""The README's commands exist as written: every script it runs accepts every flag it passes.

The commands themselves run end to end on tiny settings in test_demo.py (the demo
runs the same scripts); here each command line of the README is parsed and checked
against the script's --help, so a renamed flag or script breaks this test.
"""

import re
import shlex
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def readme_commands() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    commands = []
    for block in blocks:
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            words = shlex.split(line)
            for i, word in enumerate(words):
                if word.endswith(".py"):
                    commands.append(words[i:])
                    break
    return commands


@lru_cache(maxsize=None)
def script_help(script: str) -> str:
    result = subprocess.run(
        [sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{script} --help failed:\n{result.stderr}"
    return result.stdout


def test_readme_has_the_two_quick_start_commands():
    text = README.read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "make demo" in text and "make test" in text
    assert re.search(r"^demo:", makefile, flags=re.M) and re.search(r"^test:", makefile, flags=re.M)
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


COMMANDS = readme_commands()


def test_readme_lists_every_stage():
    scripts = {c[0] for c in COMMANDS}
    for expected in ("scripts/track1_lmdb_creator.py", "main.py", "main_results_creator_v2.py",
                     "solution_test_creator_v2.py", "scripts/evaluate.py", "scripts/make_folds.py"):
        assert expected in scripts


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c[:2]) for c in COMMANDS])
def test_readme_command_flags_exist(command):
    script = command[0]
    assert (ROOT / script).exists(), f"README runs {script}, which does not exist"
    help_text = script_help(script)
    for word in command[1:]:
        if word.startswith("--"):
            flag = word.split("=", 1)[0]
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text), (
                f"README passes {flag} to {script}, which does not accept it"
            )
