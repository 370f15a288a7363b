"""The packages import downwards only: formats <- data and models <- engine <- command line.

Every import of the project's own modules is read with ``ast`` (module level and inside
functions alike) and checked against the layer picture of docs/DESIGN.md; the module
graph must have no cycle, and the scripts stay thin.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# folder -> the name its modules are imported under (every one under signspot; see signspot/__init__.py)
FOLDERS = {"formats": "signspot.formats", "datasets": "signspot.datasets", "models": "signspot.models",
           "signspot": "signspot"}
LAYER_OF_FOLDER = {"formats": 1, "datasets": 2, "models": 2, "signspot": 3}
PACKAGES = ("signspot",)
SCRIPTS = ["main.py", "main_results_creator_v2.py", "solution_test_creator_v2.py", *sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "scripts").glob("*.py"))]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([FOLDERS[parts[0]], *parts[1:]])


def _modules() -> dict:
    return {_module_name(p): p for folder in FOLDERS for p in sorted((ROOT / folder).rglob("*.py"))}


def _imports(path: Path, module: str, known: set) -> set:
    """The project modules ``path`` imports (``from pkg import name`` counts ``pkg.name`` when that is a module)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target.split(".")[0] in PACKAGES:
                found.add(target)
    found.discard(module)
    return found


def _layer(module: str) -> int:
    if module == "signspot":
        return 1  # the package's __init__ holds only its version and the search path
    if module.startswith("signspot.cli"):
        return 4
    folder = next((f for f, name in FOLDERS.items() if f != "signspot" and (module + ".").startswith(name + ".")),
                  "signspot")
    return LAYER_OF_FOLDER[folder]


def test_the_folders_show_the_layers():
    """Listing the repository shows the layers: formats/, then datasets/ and models/, then signspot/."""
    assert all((ROOT / folder / "__init__.py").is_file() for folder in FOLDERS)
    assert not (ROOT / "signspot" / "formats").exists()
    for folder in FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            assert LAYER_OF_FOLDER[folder] == _layer(_module_name(path)) or folder == "signspot", path


@pytest.fixture(scope="module")
def graph() -> dict:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, name, known) for name, path in modules.items()}


def test_every_import_points_down_or_sideways(graph):
    upward = [f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)})"
              for m, targets in graph.items() for t in sorted(targets) if _layer(t) > _layer(m)]
    assert not upward, "\n".join(upward)


def test_the_formats_layer_needs_nothing_but_itself(graph):
    for module, targets in graph.items():
        if _layer(module) == 1:
            assert all(_layer(t) == 1 for t in targets), (module, targets)


def test_no_import_cycle(graph):
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_checker_sees_a_violation(tmp_path):
    """The parser resolves relative and absolute imports, so an upward import would be caught."""
    fake = tmp_path / "datasets" / "x.py"
    fake.parent.mkdir()
    fake.write_text("from signspot.train import train\nfrom ..cli import demo\nimport signspot.models.state\n")
    known = {"signspot.train", "signspot.cli", "signspot.cli.demo", "signspot.models.state", "signspot.datasets.x"}
    found = _imports(fake, "signspot.datasets.x", known)
    assert found == {"signspot.train", "signspot.cli", "signspot.cli.demo", "signspot.models.state"}
    assert any(_layer(t) > _layer("signspot.datasets.x") for t in found)


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_are_thin(script):
    """A script only puts the repository on sys.path and calls one command of signspot.cli."""
    tree = ast.parse((ROOT / script).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert {m for m in imported if m and m.split(".")[0] in PACKAGES} == {f"signspot.cli.{_cli_name(tree)}"}
    functions = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    assert not functions, f"{script} defines {[f.name for f in functions]}; that belongs in signspot/cli"


def _cli_name(tree) -> str:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("signspot.cli."):
            return node.module.split(".")[-1]
    return "<none>"


def test_library_never_exits_the_process():
    """Only the command line ends the process; the library raises typed errors."""
    offenders = []
    for name, path in _modules().items():
        if _layer(name) == 4:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                call = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(call, ast.Name) and call.id == "SystemExit":
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "exit" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "sys":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders
