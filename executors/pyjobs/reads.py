"""Which input tables a Python job's code reads, found statically from its syntax tree (pure).

The runtime (``runtime.run_python_job``) hands the job its tables two ways: each under its own name as
a global (``citizens``) and all of them in the ``tables`` mapping. So the code reads a table where it
loads that name, or subscripts ``tables`` with that name as a literal (``tables['citizens']``,
``tables.get('citizens')``). Any other use of ``tables`` (iterating it, ``tables[name]`` with a computed
name, passing it on, binding it to another name) reads a set of tables that cannot be known before the
code runs, and counts as every table.

The answer decides which tables (and so which domains' data keys) the job's sandbox is handed, so it
may over-count (a shadowed name still counts as read: the job is then refused or handed a table it does
not use) but never under-count a table the code could reach: a table left out is not in the sandbox at
all, and the code that names it fails there.
"""

from __future__ import annotations

import ast
from collections.abc import Collection

#: The mapping of every input table in the job's namespace (``runtime.run_python_job``).
TABLES_NAME = "tables"

#: Builtins that would read the namespace by a computed name; RestrictedPython does not offer them
#: today, and a job naming them still counts as reading every table.
_NAMESPACE_READERS = frozenset({"globals", "locals", "vars", "dir"})


def tables_read(code: str, names: Collection[str]) -> frozenset[str] | None:
    """The tables among ``names`` that ``code`` reads, or ``None`` where that cannot be known statically
    (a computed access, or code that does not parse).

    >>> sorted(tables_read("x = visits.merge(tables['citizens'])", ["citizens", "visits", "other"]))
    ['citizens', 'visits']
    >>> tables_read("for t in tables.values(): print(len(t))", ["citizens"]) is None
    True
    >>> tables_read("name = 'visits'; result = tables[name]", ["visits"]) is None
    True
    """
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    wanted = frozenset(names)
    literal: set[ast.Name] = set()  # loads of ``tables`` whose table is named by a literal
    read: set[str] = set()
    for node in ast.walk(tree):
        named = _literal_table(node)
        if named is not None:
            literal.add(named[0])
            if named[1] in wanted:
                read.add(named[1])
    for node in ast.walk(tree):
        if not isinstance(node, ast.Name):
            continue
        if node.id == TABLES_NAME and node not in literal:
            return None
        if node.id in _NAMESPACE_READERS:
            return None
        if node.id in wanted and isinstance(node.ctx, ast.Load):
            read.add(node.id)
    return frozenset(read)


def _literal_table(node: ast.AST) -> tuple[ast.Name, str] | None:
    """``tables['x']`` or ``tables.get('x', ...)``: the ``tables`` name node and ``'x'``."""
    if isinstance(node, ast.Subscript):
        base, key = node.value, node.slice
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and node.args
        and not node.keywords
        and len(node.args) <= 2
    ):
        base, key = node.func.value, node.args[0]
    else:
        return None
    if (
        isinstance(base, ast.Name)
        and base.id == TABLES_NAME
        and isinstance(base.ctx, ast.Load)
        and isinstance(key, ast.Constant)
        and isinstance(key.value, str)
    ):
        return base, key.value
    return None
