"""The module map in docs/ARCHITECTURE.md is the truth: its rules A-F, checked against the code with ``ast``.

Each test gathers every breach of its rule and fails with one line per breach: ``file:line: what [rule]``.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
MAPPED = ("convviz/*.py", "convviz/ui/*.py", "app_pages/*.py", "app.py")
"""The modules the map must list (rule A)."""
PRODUCTION = MAPPED + ("benchmarks/*.py", "scripts/*.py")
"""Production code: rules C, D and E."""
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
SIZE_MARK = "Size:"
ALGORITHM_MARK = "One algorithm:"
UI_ROWS = ("convviz/ui/", "app_pages/", "app.py")
"""Rows that may allow ``streamlit`` and ``convviz.ui.*`` (rule F)."""
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


@dataclass(frozen=True)
class Row:
    """One row of the module map: ``path`` (``convviz/ops.py``), its line in ARCHITECTURE.md, what it may import."""

    path: str
    line: int
    allowed: tuple[str, ...]


def _files(patterns) -> list[str]:
    found = set()
    for pattern in patterns:
        found.update(p.relative_to(ROOT).as_posix() for p in ROOT.glob(pattern))
    return sorted(found)


def module_name(path: str) -> str:
    """``convviz/ui/atlas.py`` -> ``convviz.ui.atlas``; a package's ``__init__.py`` -> the package's name."""
    parts = path[:-3].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@lru_cache(maxsize=None)
def our_modules() -> dict[str, str]:
    """``module name -> path`` for every module of ``convviz`` (the names other code imports)."""
    return {module_name(p): p for p in _files(("convviz/*.py", "convviz/ui/*.py"))}


@lru_cache(maxsize=None)
def read_map() -> tuple[Row, ...]:
    """The rows of the module map's table (the one under "## Module map")."""
    lines = ARCHITECTURE.read_text(encoding="utf-8").splitlines()
    start = lines.index("## Module map")
    rows = []
    for number, text in enumerate(lines[start + 1:], start + 2):
        if text.startswith("## "):
            break
        cells = [c.strip() for c in text.strip().strip("|").split("|")] if text.startswith("|") else []
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue  # not a table row, or the header / separator
        allowed = tuple(re.findall(r"`([^`]+)`", cells[2]))
        rows.append(Row(cells[0].strip("`"), number, allowed))
    assert rows, f"{ARCHITECTURE}: no module map table under '## Module map'"
    return tuple(rows)


@lru_cache(maxsize=None)
def parse(path: str) -> ast.Module:
    return ast.parse((ROOT / path).read_text(encoding="utf-8"), filename=path)


def imports(path: str):
    """Every import of the file, module level or not: ``(line, imported module or package name)``.

    ``from convviz import ops`` and ``from convviz.ui import runtime`` name the module ``convviz.ops`` /
    ``convviz.ui.runtime``; ``from convviz.model import ScratchCNN`` names ``convviz.model``.
    """
    ours = our_modules()
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                yield node.lineno, "." * node.level + (node.module or "")  # relative: never allowed by the map
                continue
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                yield node.lineno, full if full in ours else node.module


@lru_cache(maxsize=None)
def main_block_lines(path: str) -> frozenset:
    """Line numbers inside ``if __name__ == "__main__":`` blocks: a script's entry point, run as ``__main__`` and
    never when the module is imported, so its imports are not edges of the import graph."""
    lines = set()
    for node in ast.walk(parse(path)):
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"
                and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in node.test.comparators)):
            lines.update(range(node.lineno, node.end_lineno + 1))
    return frozenset(lines)


def allowed(name: str, row: Row, own: str) -> bool:
    """Whether ``row`` (of module ``own``) may import ``name``."""
    top = name.split(".")[0]
    if top in STDLIB or name == own:
        return True
    if top != "convviz":
        return top in row.allowed
    ours = our_modules()
    while name not in ours and "." in name:  # import convviz.ui.text.md -> convviz.ui.text
        name = name.rsplit(".", 1)[0]
    return any(name == a or (a.endswith(".*") and name.startswith(a[:-1])) for a in row.allowed)


def report(breaches: list[str], rule: str) -> str:
    return f"{len(breaches)} breach(es) of rule {rule} (docs/ARCHITECTURE.md):\n" + "\n".join(breaches)


# ------------------------------------------------------------------------------------------------- A. complete


def test_a_every_module_has_one_row_and_every_row_a_module():
    rows = read_map()
    paths = [r.path for r in rows]
    breaches = [f"docs/ARCHITECTURE.md:{r.line}: row {r.path} names no file [A]"
                for r in rows if not (ROOT / r.path).is_file()]
    breaches += [f"docs/ARCHITECTURE.md:{r.line}: {r.path} has a second row [A]"
                 for i, r in enumerate(rows) if r.path in paths[:i]]
    breaches += [f"{p}:1: not in the module map (add its row: | `{p}` | its one job | what it may import |) [A]"
                 for p in _files(MAPPED) if p not in paths]
    if breaches:
        pytest.fail(report(breaches, "A"), pytrace=False)


# ------------------------------------------------------------------------------------------------- B. imports


def test_b_each_module_imports_only_what_its_row_allows():
    breaches = []
    for row in read_map():
        if not (ROOT / row.path).is_file():
            continue  # rule A's failure
        own = module_name(row.path)
        for line, name in imports(row.path):
            if not allowed(name, row, own):
                breaches.append(f"{row.path}:{line}: imports {name}, which its row (docs/ARCHITECTURE.md:{row.line}) "
                                f"does not allow [B]")
    if breaches:
        pytest.fail(report(breaches, "B"), pytrace=False)


# ------------------------------------------------------------------------------------------------- C. private


def _module_aliases(tree: ast.Module) -> dict[str, str]:
    """Local names bound to one of our modules: ``from convviz import ops`` / ``import convviz.ops as ops``."""
    ours, names = our_modules(), {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in ours and alias.asname:
                    names[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in ours:
                    names[alias.asname or alias.name] = full
    return names


def _dotted(node) -> str | None:
    """``convviz.ops`` for the expression ``convviz.ops`` (Names and Attributes only)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(path: str):
    """``(line, "module._name")`` for each private name of another of our modules that ``path`` uses."""
    tree, ours = parse(path), our_modules()
    own = module_name(path)
    aliases = _module_aliases(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            source = node.module
            if source.split(".")[0] == "convviz" and source != own:
                for alias in node.names:
                    if _private(alias.name) and f"{source}.{alias.name}" not in ours:
                        yield node.lineno, f"from {source} import {alias.name}"
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            base = _dotted(node.value)
            target = aliases.get(base, base)
            if target in ours and target != own:
                yield node.lineno, f"{target}.{node.attr}"


def test_c_no_private_name_crosses_a_module():
    breaches = [f"{path}:{line}: uses {what}, private to another module (make it public or move the caller) [C]"
                for path in _files(PRODUCTION) for line, what in private_uses(path)]
    if breaches:
        pytest.fail(report(breaches, "C"), pytrace=False)


# ------------------------------------------------------------------------------------------------- D. size


def _marked(docstring: str | None, mark: str) -> bool:
    return any(line.strip().startswith(mark) for line in (docstring or "").splitlines())


def test_d_modules_stay_under_500_lines_or_say_why():
    breaches = []
    for path in _files(PRODUCTION):
        count = len((ROOT / path).read_text(encoding="utf-8").splitlines())
        if count > MAX_MODULE_LINES and not _marked(ast.get_docstring(parse(path)), SIZE_MARK):
            breaches.append(f"{path}:1: {count} lines > {MAX_MODULE_LINES}, and its docstring has no line starting "
                            f"'{SIZE_MARK}' saying why [D]")
    if breaches:
        pytest.fail(report(breaches, "D"), pytrace=False)


# ------------------------------------------------------------------------------------------------- E. functions


def long_functions(path: str):
    """``(line, qualified name, lines)`` of each function over the limit whose docstring has no algorithm mark."""
    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    length = child.end_lineno - child.lineno + 1
                    if length > MAX_FUNCTION_LINES and not _marked(ast.get_docstring(child), ALGORITHM_MARK):
                        yield child.lineno, name, length
                yield from walk(child, name + ".")
            else:
                yield from walk(child, prefix)

    yield from walk(parse(path), "")


def test_e_functions_stay_under_80_lines_or_are_one_algorithm():
    breaches = [f"{path}:{line}: {name}() is {length} lines > {MAX_FUNCTION_LINES}, and its docstring has no line "
                f"starting '{ALGORITHM_MARK}' [E]"
                for path in _files(PRODUCTION) for line, name, length in long_functions(path)]
    if breaches:
        pytest.fail(report(breaches, "E"), pytrace=False)


# ------------------------------------------------------------------------------------------------- F. layers


def test_f_only_the_ui_rows_allow_streamlit_or_convviz_ui():
    breaches = []
    for row in read_map():
        if row.path.startswith(UI_ROWS):
            continue
        for name in row.allowed:
            if name.split(".")[0].startswith("streamlit") or name.startswith("convviz.ui"):
                breaches.append(f"docs/ARCHITECTURE.md:{row.line}: {row.path} is below the UI but its row allows "
                                f"{name} [F]")
    if breaches:
        pytest.fail(report(breaches, "F"), pytrace=False)


def test_f_nothing_imports_a_page_and_our_imports_have_no_cycle():
    breaches = []
    graph = {}
    for path in _files(PRODUCTION):
        edges = graph.setdefault(module_name(path), set())
        for line, name in imports(path):
            if name.startswith("app_pages") or name == "app":
                breaches.append(f"{path}:{line}: imports the page script {name} (pages are run, never imported) [F]")
            while name not in our_modules() and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in our_modules() and name != module_name(path) and line not in main_block_lines(path):
                edges.add(name)
    done, stack = set(), []

    def visit(node):
        if node in stack:
            cycle = stack[stack.index(node):] + [node]
            breaches.append(f"{our_modules().get(node, node)}:1: import cycle {' -> '.join(cycle)} [F]")
            return
        if node in done:
            return
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            visit(target)
        stack.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)
    if breaches:
        pytest.fail(report(breaches, "F"), pytrace=False)


# ------------------------------------------------------------------------------------------------- the checks can fail


def test_the_checks_catch_what_they_are_for(tmp_path, monkeypatch):
    """Each rule's parser flags a made-up breach (so a passing test means something)."""
    bad = tmp_path / "convviz" / "bad.py"
    bad.parent.mkdir()
    body = "\n".join(f"    x = {i}" for i in range(MAX_FUNCTION_LINES))
    bad.write_text('"""A bad module."""\nimport streamlit\nfrom convviz.ops import _pair\nfrom convviz import ops\n'
                   f"ops._positive_int(1)\n\n\ndef long():\n    \"\"\"Long.\"\"\"\n{body}\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    parse.cache_clear()
    our_modules.cache_clear()
    monkeypatch.setattr(sys.modules[__name__], "our_modules", lambda: {"convviz.ops": "convviz/ops.py",
                                                                       "convviz.bad": "convviz/bad.py"})
    try:
        row = Row("convviz/bad.py", 1, ("numpy", "convviz.ops"))
        names = [name for _, name in imports("convviz/bad.py")]
        assert names == ["streamlit", "convviz.ops", "convviz.ops"]
        assert [n for n in names if not allowed(n, row, "convviz.bad")] == ["streamlit"]
        assert [what for _, what in private_uses("convviz/bad.py")] == ["from convviz.ops import _pair",
                                                                        "convviz.ops._positive_int"]
        assert [(name, length) for _, name, length in long_functions("convviz/bad.py")] == [
            ("long", MAX_FUNCTION_LINES + 2)]
        bad.write_text(bad.read_text().replace('"""Long."""', '"""Long.\n\n    One algorithm: a test."""'))
        parse.cache_clear()
        assert list(long_functions("convviz/bad.py")) == []
    finally:
        parse.cache_clear()
