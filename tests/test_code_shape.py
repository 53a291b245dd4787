"""Code shape rules the project keeps: short functions, and core code that never imports dagster."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dataplatform"
MAX_FUNCTION_LINES = 80
# A function may be longer when the line before its `def` says why, starting with this marker.
LONG_OK = "# long function:"


def _functions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def test_no_function_is_longer_than_80_lines_unless_a_comment_says_why():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for fn in _functions(ast.parse(source)):
            start = min([fn.lineno, *(d.lineno for d in fn.decorator_list)])
            length = fn.end_lineno - start + 1
            justified = start >= 2 and lines[start - 2].strip().startswith(LONG_OK)
            if length > MAX_FUNCTION_LINES and not justified:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{fn.lineno} {fn.name} ({length} lines)")
    assert offenders == []


def test_core_never_imports_dagster():
    offenders = []
    for path in sorted((PACKAGE / "core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            if any(n == "dagster" or n.startswith(("dagster.", "dagster_")) for n in names):
                offenders.append(str(path.relative_to(PACKAGE.parent)))
    assert offenders == []
