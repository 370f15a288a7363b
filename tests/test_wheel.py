"""The wheel installs under the one name signspot, with a console script for every command."""

import ast
import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = sorted(p.stem for p in (ROOT / "signspot" / "cli").glob("*.py") if not p.stem.startswith("_"))
NOT_INSTALLED = {"demo"}  # the demo drives the repository's scripts and config/: it runs from a clone


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    if shutil.which("git") is None:
        pytest.skip("git lists the tracked files to build from")
    source = tmp_path_factory.mktemp("source")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out)], check=True, capture_output=True, timeout=300)
    (path,) = out.glob("signspot-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_has_one_top_level_name(wheel):
    names = wheel.namelist()
    assert {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")} == {"signspot"}
    top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    assert wheel.read(top_level).decode().split() == ["signspot"]
    for package in ("formats", "datasets", "datasets/synthetic", "models", "cli"):
        assert f"signspot/{package}/__init__.py" in names
    # every module of the lower layers' folders is in it
    for folder in ("formats", "datasets", "models"):
        for path in (ROOT / folder).rglob("*.py"):
            assert f"signspot/{path.relative_to(ROOT).as_posix()}" in names, path


def test_every_command_has_a_console_script(wheel):
    entry_points = next(n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt"))
    parser = configparser.ConfigParser()
    parser.read_string(wheel.read(entry_points).decode())
    targets = dict(parser["console_scripts"])
    modules = {target.split(":")[0].rsplit(".", 1)[-1] for target in targets.values()}
    assert modules == set(COMMANDS) - NOT_INSTALLED
    for target in targets.values():
        module, _, function = target.partition(":")
        tree = ast.parse(wheel.read(module.replace(".", "/") + ".py"))
        assert function in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}, target


def test_installed_modules_import_nothing_outside_signspot(wheel):
    """No module of the wheel imports a top-level datasets or models package (they would be someone else's)."""
    offenders = []
    for name in wheel.namelist():
        if not name.endswith(".py"):
            continue
        for node in ast.walk(ast.parse(wheel.read(name))):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            offenders += [f"{name}: {m}" for m in modules if m.split(".")[0] in ("datasets", "models", "formats")]
    assert not offenders, offenders


def test_a_command_that_succeeds_gives_exit_status_0_as_a_console_script(tmp_path):
    """A console script runs ``sys.exit(run())``: run must return None (a returned dict would be status 1)."""
    from signspot.cli.evaluate import run
    from signspot.formats.gt import save_intervals_pkl

    save_intervals_pkl({"v": [[0, 40, 400]]}, tmp_path / "gt.pkl")
    assert run(["--gt", str(tmp_path / "gt.pkl"), "--pred", str(tmp_path / "gt.pkl")]) is None
