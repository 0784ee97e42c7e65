"""The package's import graph: no cycle, lower layers never import upper ones, the check registry imports no check.

The graph is read with `ast` from every module under `conformance/`: module-level imports, imports inside
functions and `if TYPE_CHECKING:` imports alike (a cycle hidden in a function or a type-only import is
still two modules that cannot be understood apart). `from pkg import name` is an edge to the submodule
`pkg.name` when there is one, else to `pkg`; relative imports are resolved against the importing module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = "conformance"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / PACKAGE


def module_files(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package (a package is its __init__.py)."""
    modules: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package_dir.name, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a `from ... import` names, relative levels resolved against `module`."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `module` imports anywhere in its file (itself excluded)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(module, is_package, node)
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in modules else target)
    return {name for name in found if name in modules and name != module}


def import_graph(package_dir: Path = PACKAGE_DIR) -> dict[str, set[str]]:
    """Module -> the package modules it imports."""
    modules = module_files(package_dir)
    return {module: imports_of(module, path, modules) for module, path in modules.items()}


def find_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (each sorted): the modules on some cycle.

    Tarjan's algorithm, iterative so a deep package cannot hit the recursion limit.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle (a -> b -> ... -> a) per strongly connected component of more than one module."""
    return [_cycle_within(graph, set(component)) for component in find_components(graph)]


def _cycle_within(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module, staying inside the component (breadth first)."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & component):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start] if len(path) > 1 else [start, node, start]
                if child not in parents:
                    parents[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    report = []
    for component in find_components(graph):
        members = set(component)
        edges = "\n".join(f"    {module} -> {', '.join(sorted(graph[module] & members))}" for module in component)
        report.append(f"{' -> '.join(_cycle_within(graph, members))}\n  imports among its {len(component)} modules:\n{edges}")
    assert not report, "import cycles:\n" + "\n".join(report)


# The layering, bottom up: a module may import its own layer and the ones below, never one above. Only the
# boundaries that keep the seams apart are listed; everything else follows from the no-cycle test.
ENTRY_POINTS = (
    "conformance.cli", "conformance.__main__", "conformance.demo", "conformance.scan_command", "conformance.pytest_plugin",
    "conformance.check_command", "conformance.validate_command", "conformance.cli_results", "conformance.card_update",
)
VIEWS = ("conformance.report",)
RUNNING = ("conformance.runner", "conformance.executors", "conformance.cache", "conformance.results", "conformance.result_document")
SPECS = ("conformance.spec", "conformance.schema", "conformance.catalogue")
PLANNING = ("conformance.planning", "conformance.probe_catalogue", "conformance.checks")
ABOVE_CHECKS = (*SPECS, *RUNNING, *VIEWS, *ENTRY_POINTS)
LAYER_RULES: dict[tuple[str, ...], tuple[str, ...]] = {
    # probes, weight formats and backends measure; they know nothing of checks, specs, runs or views
    ("conformance.probes", "conformance.formats", "conformance.backends", "conformance.probe_registry"): (*PLANNING, *ABOVE_CHECKS),
    # checks judge evidence: they see the registry, the rule and the probes' evidence types, never the spec
    # loader or the catalogue that imports them
    ("conformance.checks", "conformance.registry", "conformance.rule"): ABOVE_CHECKS,
    # the spec loader and the schema stand on the catalogue; runs and views stand on them
    SPECS: (*RUNNING, *VIEWS, *ENTRY_POINTS),
    RUNNING: (*VIEWS, *ENTRY_POINTS),
    VIEWS: ENTRY_POINTS,
}


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def test_lower_layers_do_not_import_upper_ones() -> None:
    graph = import_graph()
    broken = sorted(
        f"{module} -> {target}"
        for layer, forbidden in LAYER_RULES.items()
        for module in graph
        if _within(module, layer)
        for target in graph[module]
        if _within(target, forbidden) and not _within(target, layer)
    )
    assert not broken, "imports against the layering:\n" + "\n".join(broken)


def test_only_the_entry_module_imports_the_command_line() -> None:
    importers = sorted(module for module, targets in import_graph().items() if "conformance.cli" in targets)
    assert importers == ["conformance.__main__"]


def test_the_graph_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text("def late():\n    from .sub import c\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..a import x\n")
    (package / "d.py").write_text("import pkg.sub.c\nfrom .sub import nothing_here\n")
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.sub.c"} and graph["pkg.sub.c"] == {"pkg.a"}
    assert graph["pkg.d"] == {"pkg.sub.c", "pkg.sub"}
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]]


def test_the_check_registry_imports_no_check() -> None:
    """Check modules import `registry`; only `catalogue` imports them, so registering never recurses."""
    code = "import sys, conformance.registry; print(sorted(m for m in sys.modules if m.startswith('conformance.checks')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_loading_a_spec_imports_no_probe_catalogue_and_planning_still_finds_every_probe() -> None:
    # A spec load or a leaderboard read from stored results imports the checks; the probe catalogue (every
    # probe module, the pickle scanner, picklescan's network stack) is for whoever measures. Planning reads
    # the registry and imports the catalogue only when it is asked for a probe not registered yet.
    code = (
        "import sys, conformance.spec\n"
        "heavy = ('conformance.probe_catalogue', 'conformance.probes.scan', 'picklescan.scanner', 'torch', 'transformers')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "from conformance.planning import get_probe, plan\n"
        "from conformance.registry import registered_checks\n"
        "from conformance.rule import Rule\n"
        "rule = Rule(id='R', level='must', check='safety.serialization_scan', comparison={}, params={})\n"
        "print([run.name for run in plan([rule])])\n"
        "declared = {p for c in registered_checks().values() for p in c.probes}\n"
        "print(all(get_probe(p).name == p for p in declared), 'scan' in declared, 'card' in declared)\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.splitlines() == ["[]", "['scan']", "True True True"]
