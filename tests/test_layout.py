"""The shape of the code: imports point one way, and the tools that read files leave the trainer alone."""

import ast
import subprocess
import sys

from conftest import ROOT

PACKAGES = ("ppo", "networks", "wrappers")


def project_imports() -> dict[str, set[str]]:
    """Module -> the project modules it imports, anywhere in its body (lazy imports count)."""
    modules = {f"{path.parent.name}.{path.stem}": path for package in PACKAGES
               for path in (ROOT / package).glob("*.py") if path.stem != "__init__"}
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            imported |= {target for target in targets if target in modules and target != name}
        graph[name] = imported
    return graph


def test_no_import_cycles():
    graph = project_imports()
    assert len(graph) > 20
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for imported in graph[module]:
            assert state.get(imported) != "open", " -> ".join([*path, module, imported])
            if imported not in state:
                visit(imported, [*path, module])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [])


def test_lower_layers_do_not_import_the_loop_or_the_flags():
    graph = project_imports()
    for module, imported in graph.items():
        if module.startswith(("networks.", "wrappers.")):
            assert not imported & {"ppo.train", "ppo.runner", "ppo.rollout", "ppo.update", "ppo.config"}, module
    assert not graph["ppo.checkpoint"] & {"ppo.train", "ppo.runner"}
    assert graph["ppo.cli"] == set()  # every layer may use it: it uses nothing of the project


def test_the_plotter_reads_event_files_without_torch_or_the_trainer():
    code = "import sys, ppo.plot; print(sorted(m for m in ('torch', 'ppo.train', 'ppo.runner') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_function_is_longer_than_a_screen():
    """60 lines at most in ppo/, networks/ and wrappers/: a phase of the loop reads in one screen."""
    long = []
    for package in PACKAGES:
        for path in (ROOT / package).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    if node.end_lineno - node.lineno + 1 > 60:
                        long.append(f"{path.name}:{node.name}")
    assert long == []
