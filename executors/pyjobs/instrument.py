"""Rewrite a job's syntax tree so that every operation on a value goes through a hook.

RestrictedPython already routes attribute reads, item reads, writes, iteration and unpacking through
hooks (``_getattr_``, ``_getitem_``, ...). This pass, run after RestrictedPython's own, routes the
rest: calls, arithmetic and comparisons, truth tests (``if``, ``while``, ``and``/``or``/``not``,
conditional expressions, comprehension filters, ``assert``), f-strings, and entry into an
``except`` block. The hooks (``tracking.Tracker``) follow each value's provenance through them.

Hook names start with ``_sbx_``: job code cannot spell them (RestrictedPython refuses names
starting with ``_``), and calls whose function is such a name are not wrapped again.

>>> import ast
>>> tree = ast.parse("y = f(a + 1) if a > 0 else 0")
>>> print(ast.unparse(Instrument().visit(tree)))
y = _sbx_call_(f, _sbx_op_('add', a, 1)) if _sbx_test_(_sbx_op_('gt', a, 0)) else 0
"""

from __future__ import annotations

import ast
from collections.abc import Mapping

_BINARY: Mapping[type[ast.operator], str] = {
    ast.Add: "add",
    ast.Sub: "sub",
    ast.Mult: "mul",
    ast.Div: "truediv",
    ast.FloorDiv: "floordiv",
    ast.Mod: "mod",
    ast.Pow: "pow",
    ast.LShift: "lshift",
    ast.RShift: "rshift",
    ast.BitOr: "or_",
    ast.BitXor: "xor",
    ast.BitAnd: "and_",
    ast.MatMult: "matmul",
}

_COMPARE: Mapping[type[ast.cmpop], str] = {
    ast.Eq: "eq",
    ast.NotEq: "ne",
    ast.Lt: "lt",
    ast.LtE: "le",
    ast.Gt: "gt",
    ast.GtE: "ge",
    ast.Is: "is_",
    ast.IsNot: "is_not",
    ast.In: "in",
    ast.NotIn: "not_in",
}

_UNARY: Mapping[type[ast.unaryop], str] = {ast.USub: "neg", ast.UAdd: "pos", ast.Invert: "invert"}


def _hook(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=list(args), keywords=[])


def _is_hook_call(node: ast.Call) -> bool:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id.startswith("_")
    return (
        isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id.startswith("_")
    )


class Instrument(ast.NodeTransformer):
    """Route operations through ``_sbx_*`` hooks (see the module docstring)."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if _is_hook_call(node):
            return node
        return ast.copy_location(
            ast.Call(func=_hook("_sbx_call_").func, args=[node.func, *node.args], keywords=node.keywords),
            node,
        )

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        return ast.copy_location(
            _hook("_sbx_op_", ast.Constant(_BINARY[type(node.op)]), node.left, node.right), node
        )

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        if len(node.ops) == 1:
            op = ast.Constant(_COMPARE[type(node.ops[0])])
            return ast.copy_location(_hook("_sbx_op_", op, node.left, node.comparators[0]), node)
        ops = ast.Tuple(elts=[ast.Constant(_COMPARE[type(o)]) for o in node.ops], ctx=ast.Load())
        return ast.copy_location(_hook("_sbx_chain_", ops, node.left, *node.comparators), node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            return ast.copy_location(_hook("_sbx_not_", node.operand), node)
        return ast.copy_location(
            _hook("_sbx_unary_", ast.Constant(_UNARY[type(node.op)]), node.operand), node
        )

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        name = "_sbx_and_" if isinstance(node.op, ast.And) else "_sbx_or_"
        result = node.values[0]
        for value in node.values[1:]:
            later = ast.Lambda(
                args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
                body=value,
            )
            result = _hook(name, result, later)
        return ast.copy_location(result, node)

    def visit_IfExp(self, node: ast.IfExp) -> ast.AST:
        self.generic_visit(node)
        node.test = _hook("_sbx_test_", node.test)
        return node

    def visit_If(self, node: ast.If) -> ast.AST:
        self.generic_visit(node)
        node.test = _hook("_sbx_test_", node.test)
        return node

    def visit_While(self, node: ast.While) -> ast.AST:
        self.generic_visit(node)
        node.test = _hook("_sbx_test_", node.test)
        return node

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        self.generic_visit(node)
        node.test = _hook("_sbx_test_", node.test)
        return node

    def visit_comprehension(self, node: ast.comprehension) -> ast.AST:
        self.generic_visit(node)
        node.ifs = [_hook("_sbx_test_", test) for test in node.ifs]
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        self.generic_visit(node)
        node.body.insert(0, ast.copy_location(ast.Expr(_hook("_sbx_caught_")), node))
        return node

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        parts: list[ast.expr] = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                spec: ast.expr = ast.Constant("")
                if value.format_spec is not None:
                    spec = self.visit(value.format_spec)
                parts.append(
                    ast.Tuple(
                        elts=[self.visit(value.value), ast.Constant(value.conversion), spec], ctx=ast.Load()
                    )
                )
            else:
                parts.append(value)
        return ast.copy_location(_hook("_sbx_fstr_", ast.Tuple(elts=parts, ctx=ast.Load())), node)
