"""Compile job code with RestrictedPython under a stricter policy.

On top of RestrictedPython's rules (no names or attributes starting with ``_``, no ``exec``/``eval``,
guarded attribute/item access and writes) the policy refuses constructs analysts do not need and
that would weaken the guards: class definitions (subclassing pandas types or defining dunder
methods), bare ``except:`` (would catch the guards' refusals), generators' ``yield`` (frame and
generator internals), ``with`` blocks, ``global``/``nonlocal`` and ``async`` code. The tree it leaves
is then instrumented (``instrument``) so that the runtime can follow where every value comes from.
"""

from __future__ import annotations

import ast
from types import CodeType
from typing import Any

from RestrictedPython.compile import compile_restricted_exec
from RestrictedPython.transformer import RestrictingNodeTransformer

from executors.pyjobs.errors import CodeRejected
from executors.pyjobs.instrument import Instrument

#: File name given to compiled job code; the runtime finds the job's own frames by it.
JOB_FILENAME = "<job>"

#: Longest code a job may submit (characters).
MAX_CODE_CHARS = 200_000


class JobPolicy(RestrictingNodeTransformer):
    """RestrictedPython's transformer with the sandbox's extra refusals."""

    def _refuse(self, node: ast.AST, what: str) -> None:
        self.error(node, f"{what} are not allowed in sandbox jobs.")

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        self._refuse(node, "Class definitions")
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> Any:
        if node.type is None:
            self._refuse(node, "Bare 'except:' clauses (name the exception, e.g. 'except ValueError:')")
        return super().visit_ExceptHandler(node)

    def visit_Yield(self, node: ast.Yield) -> Any:
        self._refuse(node, "Generator functions ('yield')")
        return node

    def visit_YieldFrom(self, node: ast.YieldFrom) -> Any:
        self._refuse(node, "Generator functions ('yield from')")
        return node

    def visit_With(self, node: ast.With) -> Any:
        self._refuse(node, "'with' blocks")
        return node

    def visit_Global(self, node: ast.Global) -> Any:
        self._refuse(node, "'global' statements")
        return node

    def visit_Module(self, node: ast.Module) -> Any:
        # RestrictedPython's rules first; then, if the code passed them, route every operation through
        # the provenance hooks (``instrument``), which need the tree RestrictedPython produced.
        result = super().visit_Module(node)
        if not self.errors:
            Instrument().visit(node)
            ast.fix_missing_locations(node)
        return result


def compile_job(code: str) -> CodeType:
    """Compile ``code`` for execution with the sandbox's guards; ``CodeRejected`` lists every problem.

    >>> compile_job("x = 1 + 1").co_filename
    '<job>'
    """
    if len(code) > MAX_CODE_CHARS:
        raise CodeRejected(f"the code is longer than {MAX_CODE_CHARS} characters")
    if "\x00" in code:
        raise CodeRejected("the code contains a NUL character")
    try:
        result = compile_restricted_exec(code, filename=JOB_FILENAME, policy=JobPolicy)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise CodeRejected(f"the code could not be parsed ({type(exc).__name__})") from exc
    if result.errors or result.code is None:
        errors = tuple(result.errors) or ("the code could not be compiled",)
        raise CodeRejected(
            "the code was rejected by the sandbox policy: " + "; ".join(errors), findings=errors
        )
    return result.code
