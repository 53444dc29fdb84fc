"""Distributed execution plans: split a rewritten query into per-part partial and final merge steps."""

from policies.distributed.split import PARTIALS_TABLE, NotSplittable, SplitQuery, split_query

__all__ = ["PARTIALS_TABLE", "NotSplittable", "SplitQuery", "split_query"]
