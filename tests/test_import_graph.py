"""The import graph: imports only point down, and there is no cycle inside vemonitor/.

Layers, from the top (docs/architecture.md): the command (cli, Hydra composition)
-> the job -> the engine -> the core's services (loader, outbox, delivery...) ->
the plugin contract ``vemonitor.api`` -> the VE.Direct codec. Integrations import
the contract and the codec, nothing else of the core; ``hw_sim`` imports the codec
and the contract (it provides a service), and the core never imports ``hw_sim``.

Every import statement counts, also one inside a function or under
``TYPE_CHECKING``: a lazy import is still a dependency. A new module of
``vemonitor/`` must be given its layer in :data:`LAYERS` (the test says so).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Layer of each vemonitor module (a module not named takes its package's layer).
CODEC, CONTRACT, CORE, ENGINE, JOB, COMPOSE, COMMAND = range(7)
LAYERS: dict[str, int] = {
    "vemonitor.vedirect": CODEC,
    "vemonitor.clock": CODEC,
    "vemonitor.serial_reader": CODEC,  # the codec's I/O half: a port -> snapshots
    "vemonitor.hex_session": CODEC,  # one port's HEX conversation (pure logic, issue 22)
    "vemonitor.scan": CODEC,  # probing ports for a device (no engine, no contract)
    "vemonitor.portsafety": CODEC,  # is a port free to probe (issue 25)
    "vemonitor.controltypes": CODEC,  # the control contract's types (stdlib only; api re-exports)
    "vemonitor.control": CODEC,  # device controls over HEX (issue 23): beside the serial reader
    "vemonitor": CONTRACT,  # the package itself holds only __version__
    "vemonitor.api": CONTRACT,
    "vemonitor.errors": CONTRACT,
    "vemonitor.model": CONTRACT,
    "vemonitor.datacache": CONTRACT,
    "vemonitor.logsafe": CONTRACT,
    "vemonitor.testing": CONTRACT,  # test doubles of the contract, for plugin authors
    "vemonitor.schema": CONTRACT,  # the item types integrations subclass
    "vemonitor.bounds": CONTRACT,  # finite-number checks of the item types
    "vemonitor.outside": CONTRACT,  # rows from outside (Redis/MQTT inputs) are data
    "vemonitor.secretpolicy": CONTRACT,  # which values are secret, and masking them
    "vemonitor.supervise": CODEC,  # supervised threads (stdlib only: the serial reader runs one)
    "vemonitor.fieldpolicy": CODEC,  # fields left out: the serial reader and the engine count them
    "vemonitor.exits": CORE,
    "vemonitor.statelock": CORE,
    "vemonitor.config": CORE,  # the composed mapping -> a typed run (build, legacy, seed...)
    "vemonitor.config.yamlguard": CORE,
    "vemonitor.risks": JOB,
    "vemonitor.config.paths": CORE,
    "vemonitor.config.legacy": CORE,
    "vemonitor.config.build": CORE,
    "vemonitor.registry": CORE,
    "vemonitor.outbox": CORE,
    "vemonitor.delivery": CORE,
    "vemonitor.middlewares": CORE,
    "vemonitor.batteries": CORE,
    "vemonitor.budget": CORE,
    "vemonitor.engine": ENGINE,
    "vemonitor.job": JOB,
    "vemonitor.stopsignals": JOB,  # SIGINT/SIGTERM recorded, acted on by the run (issue 25)
    "vemonitor.exit_summary": JOB,  # the exit summary's text (issue 13)
    "vemonitor.metrics": JOB,
    "vemonitor.compose": COMPOSE,
    "vemonitor.cli": COMMAND,
    "vemonitor.commands": COMMAND,
    "vemonitor.commandline": COMMAND,  # the subcommands and flags, one table each
    "vemonitor.cli_strict": COMMAND,  # the command line checked before a run (issue 13)
    "vemonitor.report": COMMAND,  # `vemonitor report` (issue 13)
    "vemonitor.hex_cli": COMMAND,  # `vemonitor hex get` (issue 22)
    "vemonitor.control_cli": COMMAND,  # `vemonitor hex set|lease|log` (issue 23)
    "vemonitor.history_cli": COMMAND,  # `vemonitor history` (issue 22)
    "vemonitor.decode_cli": COMMAND,
    "vemonitor.__main__": COMMAND,
}
# What integrations and hw_sim may import of vemonitor: the contract and the codec.
PLUGIN_ALLOWED = ("vemonitor.api", "vemonitor.vedirect", "vemonitor.serial_reader",
                  "vemonitor.hex_session", "vemonitor.scan", "vemonitor.control")
HW_SIM_ALLOWED = ("vemonitor.api", "vemonitor.vedirect", "vemonitor.clock")


# Installed package name -> its folder in the repo (pyproject.toml's package-dir).
INSTALLED = {"vemonitor_integrations": "integrations", "vemonitor_conf": "conf"}


def repo_name(module: str) -> str:
    """Return an imported module's name as its repo path reads (vemonitor_integrations.x ->
    integrations.x)."""
    head, _, rest = module.partition(".")
    return ".".join(p for p in (INSTALLED.get(head, head), rest) if p)


def module_name(path: Path) -> str:
    """Return the dotted module name of a file under the repo root."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line, module) for every import in a file (``from a import b`` gives a.b
    when that is a module of the repo, else a)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, repo_name(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = repo_name(node.module or "")
            if node.level:  # relative: resolve against the file's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                child = f"{base}.{alias.name}"
                yield node.lineno, child if _is_repo_module(child) else base


def _is_repo_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def files(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


EXAMPLE = "examples/vemonitor-integration-example/vemonitor_jsonl"  # the external example


def layer(module: str) -> int | None:
    """Return the layer of a vemonitor module (its own entry, else its package's)."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        found = LAYERS.get(".".join(parts[:end]))
        if found is not None:
            return found
    return None


def inside(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def core_graph() -> dict[str, set[str]]:
    """Return module -> vemonitor modules it imports, for every module of vemonitor/."""
    graph: dict[str, set[str]] = {}
    for path in files("vemonitor"):
        graph[module_name(path)] = {m for _, m in imports(path) if inside(m, ("vemonitor",))}
    return graph


def test_every_core_module_has_a_layer() -> None:
    unranked = [m for m in core_graph() if layer(m) is None]
    assert not unranked, f"give these modules a layer in tests/test_import_graph.py: {unranked}"


def test_core_imports_only_point_down() -> None:
    """A module imports only modules of its own layer or below (cli -> ... -> codec)."""
    upward = []
    for path in files("vemonitor"):
        source = module_name(path)
        for line, target in imports(path):
            if inside(target, ("vemonitor",)) and (layer(target) or 0) > (layer(source) or 0):
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not upward, "imports pointing up:\n" + "\n".join(upward)


def test_the_core_never_imports_the_simulator_or_an_integration() -> None:
    """The simulator is a service found through an entry point, like an integration."""
    found = [f"{path.relative_to(ROOT)}:{line} imports {target}"
             for path in files("vemonitor") for line, target in imports(path)
             if inside(target, ("hw_sim", "integrations", "conf"))]
    assert not found, "\n".join(found)


def test_the_contract_does_not_load_the_serial_stack() -> None:
    """vemonitor.api, and all it imports, stays free of pyserial and the port scanner."""
    graph = core_graph()
    seen: set[str] = set()
    todo = ["vemonitor.api"]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo += [m for m in graph.get(module, ()) if m in graph]
    assert not seen & {"vemonitor.scan", "vemonitor.serial_reader"}, sorted(seen)
    assert all(layer(m) is not None and layer(m) <= CONTRACT for m in seen), sorted(seen)


@pytest.mark.parametrize(("package", "allowed"), [("integrations", PLUGIN_ALLOWED),
                                                  (EXAMPLE, PLUGIN_ALLOWED),
                                                  ("hw_sim", HW_SIM_ALLOWED)])
def test_plugins_import_only_the_contract_and_the_codec(package: str,
                                                        allowed: tuple[str, ...]) -> None:
    bad = [f"{path.relative_to(ROOT)}:{line} imports {target}"
           for path in files(package) for line, target in imports(path)
           if inside(target, ("vemonitor",)) and not inside(target, allowed)]
    assert not bad, f"{package} may import only {allowed}:\n" + "\n".join(bad)


def test_code_imports_integrations_and_conf_by_their_installed_names() -> None:
    """`integrations` and `conf` are repo folders; installed they are vemonitor_integrations
    and vemonitor_conf (pyproject.toml), so code importing the bare names would only work
    from a checkout, and would clash with other packages in a shared site-packages."""
    bare = []
    for package in ("vemonitor", "integrations", "hw_sim", "tests", "benchmarks", EXAMPLE):
        for path in files(package):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module or ""] if isinstance(node, ast.ImportFrom)
                         and not node.level else [])
                if isinstance(node, ast.Call) and node.args and isinstance(
                        node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                    # resources.files("conf"), import_module("integrations.x"): by name too
                    called = ast.unparse(node.func)
                    if called.endswith(("files", "import_module", "find_spec")):
                        names = [node.args[0].value]
                bare += [f"{path.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names
                         if n.partition(".")[0] in INSTALLED.values()]
    assert not bare, "\n".join(bare)


def test_no_import_cycle_inside_vemonitor() -> None:
    """Tarjan's strongly connected components: every one must be a single module."""
    graph = core_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checks_see_a_violation() -> None:
    """The parser finds lazy imports and resolves ``from a import module``."""
    found = dict((m, line) for line, m in imports(ROOT / "vemonitor" / "cli.py"))
    assert "vemonitor.job" in found  # imported inside a function
    assert "vemonitor.compose" in found  # from vemonitor import compose



def is_conftest(module: str) -> bool:
    """Return True for a conftest module (``tests.conftest``, ``tests.x.conftest.y``)."""
    return "conftest" in module.split(".")


def test_tests_take_helpers_from_plain_modules_not_from_conftest() -> None:
    """A conftest holds fixtures; helpers live in plain modules (tests/shared.py,
    tests/integrations/*/support.py) or in the shipped vemonitor.testing.

    Importing a conftest as a module can run it a second time under another name, and
    hides where a helper lives (issue 16). Relative imports count (``from .conftest``).
    """
    found = [f"{path.relative_to(ROOT)}:{line} imports {module}"
             for path in files("tests") for line, module in imports(path) if is_conftest(module)]
    assert not found, "\n".join(found)


def test_the_conftest_check_sees_a_violation() -> None:
    """Absolute, relative (resolved by imports()) and member imports are all caught."""
    assert is_conftest("tests.conftest")
    assert is_conftest("tests.homeassistant.conftest")
    assert is_conftest("tests.integrations.redis.conftest.NOW")
    assert not is_conftest("tests.integrations.redis.support")
