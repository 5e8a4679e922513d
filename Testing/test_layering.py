"""The command line is the top floor: only cli.py and commands/ import SpineLabelerLib.commands.

A static scan of the package's source (no module is imported), so that a library module that
reaches up into a command (its arguments, its defaults) fails here, not in a circular import.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "SpineLabelerLib"
COMMANDS = "SpineLabelerLib.commands"


def imported_names(node: ast.AST, package: str) -> list[str]:
    """The modules (or module.name) an import node names; relative ones resolved against
    ``package``; ``importlib.import_module`` / ``__import__`` on a literal name or an
    f-string's leading text."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parts = package.split(".")
            parent = parts[: len(parts) - node.level + 1]
            base = ".".join([*parent, base] if base else parent)
        return [base, *(f"{base}.{alias.name}" for alias in node.names)]
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        first = node.args[0]
        if isinstance(first, ast.JoinedStr) and first.values:
            first = first.values[0]
        if called in ("import_module", "__import__") and isinstance(first, ast.Constant):
            return [str(first.value).rstrip(".")]
    return []


def command_imports(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    """``file:line`` of each import of SpineLabelerLib.commands in ``path`` (under ``root``)."""
    package = ".".join(path.relative_to(root).parent.parts)  # what a relative import is from
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = imported_names(node, package)
        if any(n == COMMANDS or n.startswith(COMMANDS + ".") for n in names):
            found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_only_the_command_line_imports_the_commands():
    library = [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "cli.py" and "commands" not in path.relative_to(PACKAGE).parts
    ]
    assert len(library) > 30  # the whole package is scanned, not an empty folder
    assert [line for path in library for line in command_imports(path)] == []


def test_the_scan_sees_each_way_of_importing_a_command(tmp_path):
    folder = tmp_path / "SpineLabelerLib" / "training"
    folder.mkdir(parents=True)
    ways = {
        "import SpineLabelerLib.commands.train": 1,
        "from SpineLabelerLib.commands.segment import review_reasons": 1,
        "from SpineLabelerLib import commands": 1,
        "from ..commands import fit_level_head": 1,
        "from .. import commands": 1,
        "import importlib\nimportlib.import_module(f'SpineLabelerLib.commands.{name}')": 1,
        "from SpineLabelerLib import nets\nfrom .. import identify\nfrom . import commands": 0,
    }
    for n, (source, expected) in enumerate(ways.items()):
        path = folder / f"m{n}.py"
        path.write_text(source + "\n")
        assert len(command_imports(path, tmp_path)) == expected, source
    assert command_imports(PACKAGE / "cli.py")  # it imports every command module by name
