"""The package's layout as DESIGN.md draws it: imports run one way, cli -> bench -> api -> speculative ->
drafters -> models -> ops -> runtime, with `sampling` and `errors` leaves every layer may use; no module
imports itself back through others (no import circle, lazy imports inside functions included)."""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "tt_specdec"
LAYERS = ["cli", "bench", "api", "speculative", "drafters", "models", "ops", "runtime"]  # outermost first
LEAVES = {"sampling", "errors", "_cpu", "_emu"}
LAYER_OF = {"": "api"}  # tt_specdec/__init__.py re-exports the api


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: pathlib.Path) -> set[str]:
    """The tt_specdec modules a file imports, anywhere in it (lazy imports in functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "tt_specdec"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tt_specdec":
            for a in node.names:  # `from pkg import module` imports that module, `from module import name` the module
                found.add(f"{node.module}.{a.name}" if module_path(f"{node.module}.{a.name}") else node.module)
    return found


def module_path(name: str) -> pathlib.Path | None:
    base = PACKAGE.parent.joinpath(*name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py", *base.parent.glob(f"{base.name}.*.so")):  # .so: C++
        if p.is_file():
            return p
    return None


def layer(name: str) -> str:
    top = name.split(".")[1] if "." in name else ""
    return LAYER_OF.get(top, top)


GRAPH = {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def test_every_module_is_in_a_layer_or_a_leaf():
    unknown = sorted(m for m in GRAPH if layer(m) not in LAYERS and layer(m) not in LEAVES)
    assert not unknown, f"modules outside DESIGN.md's layers {LAYERS} and leaves {sorted(LEAVES)}: {unknown}"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_run_one_way(module):
    mine = layer(module)
    for target in sorted(GRAPH[module]):
        theirs = layer(target)
        if theirs in LEAVES:
            continue
        assert mine not in LEAVES, f"{module} is a leaf ({mine}) but imports {target} ({theirs})"
        assert LAYERS.index(theirs) >= LAYERS.index(mine), \
            f"{module} ({mine}) imports {target} ({theirs}), against {' -> '.join(LAYERS)}"


def test_no_import_circle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(GRAPH.get(m, ())):
            if t not in GRAPH:
                continue
            if state.get(t) == 1:
                cycle = path[path.index(t):] + [t] if t in path else [m, t]
                raise AssertionError(f"import circle: {' -> '.join(cycle)}")
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m, [m])


def test_the_rule_catches_an_upward_import(tmp_path):
    """The walk sees a lazy import inside a function, and the rule refuses ops importing the loop."""
    f = tmp_path / "x.py"
    f.write_text("def late():\n    from tt_specdec.speculative.loop import speculative_generate\n")
    found = imports(f)
    assert found == {"tt_specdec.speculative.loop"}
    assert LAYERS.index(layer("tt_specdec.speculative.loop")) < LAYERS.index(layer("tt_specdec.ops.rollback_kv"))
