"""Which package modules a stage script runs: its imports of badnet_repair, followed
through the package and its sub-packages (function-level imports included), read from the
source."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "badnet_repair"


def _file(dotted: str) -> Path | None:
    """The file of a dotted module name: a module or a package's __init__."""
    base = ROOT.joinpath(*dotted.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _dotted(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imported(path: Path) -> set[str]:
    """Dotted names of the package modules that one file imports."""
    tree = ast.parse(path.read_text(), str(path))
    here = _dotted(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + (node.module.split(".") if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != PACKAGE:
                continue
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names if _file(f"{module}.{a.name}")}
    return {m for m in found if _file(m)}


def _with_parents(dotted: str) -> set[str]:
    """A module and the packages above it: importing it runs their __init__ files."""
    parts = dotted.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def closure(script) -> set[str]:
    """Repository paths of `script` and every package module it runs, __init__ files included."""
    start = ROOT / script
    todo = list(_imported(start)) + ([_dotted(start)] if str(script).startswith(PACKAGE + "/") else [])
    seen = set()
    while todo:
        for m in _with_parents(todo.pop()):
            if m not in seen:
                seen.add(m)
                todo += _imported(_file(m))
    return {str(script)} | {str(_file(m).relative_to(ROOT)) for m in seen}
