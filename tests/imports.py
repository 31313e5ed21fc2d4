"""Which package modules a stage script runs: its imports of badnet_repair, followed
through the package (function-level imports included), read from the source."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "badnet_repair"


def _imported(path: Path) -> set[str]:
    """Package module names that one file imports."""
    tree = ast.parse(path.read_text(), str(path))
    in_package = path.parent.name == PACKAGE
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith(PACKAGE + ".")}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 1 and in_package or node.module and node.module.split(".")[0] == PACKAGE:
                parts = (node.module or "").split(".")
                sub = parts[1] if node.level == 0 and len(parts) > 1 else parts[0] if node.level else ""
                if sub:
                    found.add(sub)
                else:  # from . import a, b  /  from badnet_repair import a, b
                    found |= {a.name for a in node.names}
    return {m for m in found if (ROOT / PACKAGE / f"{m}.py").is_file()}


def closure(script) -> set[str]:
    """Repository paths of `script` and every package module it runs, __init__ included."""
    todo, seen = list(_imported(ROOT / script)), set()
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += _imported(ROOT / PACKAGE / f"{m}.py")
    return {str(script)} | {f"{PACKAGE}/__init__.py"} | {f"{PACKAGE}/{m}.py" for m in seen}
