"""Differential privacy for people: the cost shown before a job runs, and what a released job spent.

The gateway answers both as JSON (the dry run's ``dp`` and ``budget_left``, the report's
``differential_privacy``); these lines say the same in words and a small table, for ``sandbox job
check``, ``sandbox job result`` and the demo. Nothing here computes privacy: it only formats what the
gateway decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def preview_lines(dp: Mapping[str, Any], budget_left: Mapping[str, float] | None) -> list[str]:
    """The dry run's cost preview: what the job would spend, what is left, and per column its noise.

    >>> preview = {"epsilon": 0.5, "delta": 0.0, "mechanism": "laplace", "public_keys": True,
    ...            "key_selection": None, "clamped": ["visits.cost to [0, 500]"],
    ...            "columns": [{"column": "n", "part": "value", "mechanism": "laplace", "scale": 2.0,
    ...                         "half_width_95": 6.43}]}
    >>> print("\\n".join(preview_lines(preview, {"epsilon": 4.5, "delta": 0.0})))
    differential privacy: this job would spend epsilon 0.5 (laplace); you have epsilon 4.5 left in this scope
      column  noise    scale  95 % of releases within
      n       laplace  2      ±6.43
      clamped before aggregating: visits.cost to [0, 500]
      group keys: every key of the public domain is released, with noise, empty ones too
    """
    spend = f"epsilon {_num(dp['epsilon'])}" + (f" and delta {_num(dp['delta'])}" if dp.get("delta") else "")
    head = f"differential privacy: this job would spend {spend} ({dp['mechanism']})"
    if budget_left is not None:
        head += "; you have " + _amount(budget_left) + " left in this scope"
        if dp["epsilon"] > budget_left.get("epsilon", 0.0) + 1e-12:
            head += " (not enough: the job would be refused)"
    lines = [head]
    rows: list[tuple[str, ...]] = [("column", "noise", "scale", "95 % of releases within")]
    for column in dp.get("columns", []):
        name = column["column"] if column["part"] == "value" else f"{column['column']} ({column['part']})"
        rows.append((name, column["mechanism"], _num(column["scale"]), f"±{_num(column['half_width_95'])}"))
    if len(rows) > 1:
        lines.extend("  " + line for line in _aligned(rows))
    if dp.get("clamped"):
        lines.append("  clamped before aggregating: " + ", ".join(dp["clamped"]))
    lines.append("  group keys: " + _keys(dp))
    return lines


def report_lines(spent: Mapping[str, Any]) -> list[str]:
    """A released job's ``differential_privacy`` report member, in one line.

    >>> report_lines({"epsilon": 1.0, "delta": 0.0, "mechanism": "gaussian",
    ...               "columns": {"n": "gaussian", "avg_cost.sum": "gaussian"}})
    ['differential privacy: this job spent epsilon 1 (gaussian) on n, avg_cost.sum (the receipt signs it)']
    """
    spend = f"epsilon {_num(spent['epsilon'])}" + (
        f" and delta {_num(spent['delta'])}" if spent.get("delta") else ""
    )
    columns = ", ".join(spent.get("columns", {}))
    mechanism = spent["mechanism"]
    return [f"differential privacy: this job spent {spend} ({mechanism}) on {columns} (the receipt signs it)"]


def budget_lines(budget: Mapping[str, Any]) -> list[str]:
    """A job's ``dp_budget`` (the submit answer, ``GET /v1/jobs/{id}``): what it spent, what is left.

    >>> budget = {"scope": "flu-dp", "period": 0, "spent": {"epsilon": 0.5, "delta": 0.0},
    ...           "refunded": False, "limit": {"epsilon": 5.0, "delta": 0.0},
    ...           "left": {"epsilon": 4.5, "delta": 0.0}}
    >>> budget_lines(budget)
    ['differential privacy: this job spent epsilon 0.5; epsilon 4.5 of 5 left in scope flu-dp']
    >>> refunded = {**budget, "refunded": True, "spent": {"epsilon": 0.0, "delta": 0.0},
    ...             "left": {"epsilon": 5.0, "delta": 0.0}}
    >>> for part in budget_lines(refunded)[0].split("; "):
    ...     print(part)
    differential privacy: this job spent nothing (its charge was refunded)
    epsilon 5 of 5 left in scope flu-dp
    """
    spent = "nothing (its charge was refunded)" if budget.get("refunded") else _amount(budget["spent"])
    left, limit = budget["left"], budget["limit"]
    have = f"epsilon {_num(left.get('epsilon', 0.0))} of {_num(limit.get('epsilon', 0.0))}"
    if limit.get("delta"):
        have += f", delta {_num(left.get('delta', 0.0))} of {_num(limit['delta'])}"
    period = " in this period" if budget.get("period") else ""
    text = f"differential privacy: this job spent {spent}; {have} left in scope {budget['scope']}{period}"
    return [text]


def _keys(dp: Mapping[str, Any]) -> str:
    selection = dp.get("key_selection")
    if selection is not None:
        return (
            "chosen from the data: a key is released only when a noisy count of its people reaches "
            f"{selection['threshold']} (so rare keys are left out)"
        )
    if dp.get("public_keys"):
        return "every key of the public domain is released, with noise, empty ones too"
    return "none (one row)"


def _amount(left: Mapping[str, float]) -> str:
    text = f"epsilon {_num(left.get('epsilon', 0.0))}"
    if left.get("delta"):
        text += f", delta {_num(left['delta'])}"
    return text


def _num(value: float) -> str:
    return f"{value:.4g}"


def _aligned(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
