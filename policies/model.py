"""The scope document (docs/design.md §4): pydantic models, YAML/JSON loading, canonical form, version id.

A scope is validated with ``extra="forbid"`` everywhere so a typo is an error, never a silently ignored
setting. A column not named under ``columns:`` is ``deny``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from datetime import date
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from policies.errors import ScopeInvalid
from policies.findings import Finding

_GRANTEE = re.compile(r"^(operator|group):[A-Za-z0-9._@-]{1,128}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
_DATASET_KEY = re.compile(r"^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*(/[A-Za-z_][A-Za-z0-9_]*)?$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Use(StrEnum):
    """Column use levels, from most to least restrictive (docs/design.md §4)."""

    DENY = "deny"
    JOIN_KEY = "join_key"
    FILTER = "filter"
    AGGREGATE = "aggregate"
    GROUP = "group"
    PLAIN = "plain"


class AggregateFunction(StrEnum):
    """Aggregate functions a scope may list for an ``aggregate`` column."""

    COUNT = "count"
    SUM = "sum"
    AVG = "avg"
    STDDEV = "stddev"
    VARIANCE = "variance"
    MEDIAN = "median"
    MIN = "min"
    MAX = "max"


#: Functions an ``aggregate`` column allows when its rule lists none. MIN, MAX and MEDIAN release a
#: single person's value, so an officer has to name them explicitly.
DEFAULT_FUNCTIONS: tuple[AggregateFunction, ...] = (
    AggregateFunction.COUNT,
    AggregateFunction.SUM,
    AggregateFunction.AVG,
)


class Partial(_Strict):
    keep_first: Annotated[int, Field(ge=0, le=64)] = 0
    keep_last: Annotated[int, Field(ge=0, le=64)] = 0


class Width(_Strict):
    width: Annotated[float, Field(gt=0)]


class Prefix(_Strict):
    prefix: Annotated[int, Field(ge=0, le=64)]


class PartialMask(_Strict):
    partial: Partial


class GeneralizeMask(_Strict):
    generalize: Literal["year", "month", "decade"] | Width | Prefix


class KeywordMask(_Strict):
    """``redact``, ``null`` or ``keyed_hash``: written as a bare word (quote ``"null"`` in YAML)."""

    kind: Literal["redact", "null", "keyed_hash"]


Mask = KeywordMask | PartialMask | GeneralizeMask


class ColumnRule(_Strict):
    use: Use
    mask: Mask | None = None
    functions: tuple[AggregateFunction, ...] | None = None
    bounds: tuple[float, float] | None = None

    @field_validator("mask", mode="before")
    @classmethod
    def _keyword_mask(cls, value: object) -> object:
        if isinstance(value, str):
            return {"kind": value}
        return value

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.use is not Use.AGGREGATE and (self.functions is not None or self.bounds is not None):
            raise ValueError("'functions' and 'bounds' are only allowed with use: aggregate")
        if self.bounds is not None and not self.bounds[0] < self.bounds[1]:
            raise ValueError("bounds must be [low, high] with low < high")
        if self.use is Use.DENY and self.mask is not None:
            raise ValueError("a denied column cannot have a mask (it is never read)")
        if self.use is Use.JOIN_KEY and self.mask is not None and not _is_keyed_hash(self.mask):
            raise ValueError("a join_key column allows only the keyed_hash mask (or none)")
        return self

    @property
    def allowed_functions(self) -> tuple[AggregateFunction, ...]:
        """The aggregate functions this column may be used with (``DEFAULT_FUNCTIONS`` if none listed)."""
        return self.functions if self.functions is not None else DEFAULT_FUNCTIONS


def _is_keyed_hash(mask: Mask) -> bool:
    return isinstance(mask, KeywordMask) and mask.kind == "keyed_hash"


DENY_RULE = ColumnRule(use=Use.DENY)


class DatasetGrant(_Strict):
    unit: str | None = None
    row_filter: str | None = None
    columns: dict[str, ColumnRule] = Field(default_factory=dict)

    def rule(self, column: str) -> ColumnRule:
        """The rule of ``column`` (case-insensitive, as DuckDB resolves names); unlisted means deny."""
        return self._lowered.get(column.lower(), DENY_RULE)

    @cached_property
    def _lowered(self) -> dict[str, ColumnRule]:
        return {name.lower(): rule for name, rule in self.columns.items()}


class Validity(_Strict):
    from_: date = Field(alias="from")
    until: date

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.until < self.from_:
            raise ValueError("valid.until must not be before valid.from")
        return self


class Rounding(_Strict):
    base: Annotated[int, Field(ge=2, le=1_000_000)]


class PeriodicRefresh(_Strict):
    """A budget that comes back every ``every_days`` days: the officer states the risk in words.

    Refreshing means the guarantee no longer holds over the whole life of the data: someone who keeps
    asking for years gets ``budget`` per period, so over ``n`` periods the loss about one person can
    reach ``n × budget``. ``risk_accepted`` records why that is acceptable (it is shown to auditors).
    """

    every_days: Annotated[int, Field(ge=1, le=3660)]
    risk_accepted: Annotated[str, Field(min_length=20, max_length=2000)]


#: A contribution bound: rows or groups of one unit.
_Bound = Annotated[int, Field(ge=1, le=1000)]

#: A value a public group-key domain may list (the released key, after any mask).
PublicKey = str | int | float | bool


class DifferentialPrivacy(_Strict):
    """Differential privacy for every job of the scope (docs/design.md §5): noisy results, a budget that ends.

    In words a policy officer can weigh: *epsilon* bounds how much any one person's presence in the data
    can change what operators see. With ``epsilon_per_job: 0.5`` no released table is more than e^0.5 ≈
    1.65 times likelier with a given person than without them. Every job spends its epsilon from
    ``budget``, shared by every version of the scope over the same datasets and counted per grantee; when
    it is spent, jobs are refused (the limit that holds against any number of jobs).

    >>> dp = DifferentialPrivacy(epsilon_per_job=0.5, budget=5.0)          # a scope written before DP ran
    >>> dp.mechanism, dp.max_rows_per_unit, dp.max_groups_per_unit, dp.refresh, dp.delta
    ('laplace', 1, 1, 'none', 0.0)
    >>> DifferentialPrivacy(epsilon_per_job=1, budget=4, mechanism="gaussian", delta=1e-8,
    ...                     max_rows_per_unit={"visits": 5}).rows_per_unit("visits")
    5
    >>> DifferentialPrivacy(epsilon_per_job=2, budget=1)
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for DifferentialPrivacy
    ...
    """

    #: Epsilon one job spends (split over its noised columns; see ``policies.dp``).
    epsilon_per_job: Annotated[float, Field(gt=0, le=10)]
    #: Total epsilon over the scope lineage, per grantee. A job that would pass it is refused.
    budget: Annotated[float, Field(gt=0, le=1000)]
    #: Chance per job that the epsilon promise fails outright (needed by the Gaussian mechanism and by
    #: choosing group keys from the data). Keep it far below 1 / (people in the data); 0 means none.
    delta: Annotated[float, Field(ge=0, le=1e-3)] = 0.0
    #: Total delta over the lineage; by default as many jobs' delta as the epsilon budget allows.
    delta_budget: Annotated[float, Field(ge=0, le=1e-2)] | None = None
    #: ``laplace`` (pure epsilon-DP) or ``gaussian`` (zero-concentrated DP, converted to epsilon and delta).
    mechanism: Literal["laplace", "gaussian"] = "laplace"
    #: ``none`` (the budget never comes back) or ``{every_days, risk_accepted}``.
    refresh: Literal["none"] | PeriodicRefresh = "none"
    #: Rows of one person kept per table (a keyed, deterministic sample of theirs); a number for every
    #: table, or ``{table: number}`` (tables not named keep 1).
    max_rows_per_unit: (
        Annotated[int, Field(ge=1, le=1000)] | dict[str, Annotated[int, Field(ge=1, le=1000)]]
    ) = 1
    #: Groups (result rows) one person may count towards; their other rows are left out.
    max_groups_per_unit: _Bound = 1
    #: Group-key values that are public knowledge (e.g. every district): all of them are released, empty
    #: ones too, so no key appears only because someone in the data has it. Keyed by column name.
    public_groups: dict[str, tuple[PublicKey, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.epsilon_per_job > self.budget:
            raise ValueError("epsilon_per_job cannot exceed the total budget (no job could ever run)")
        if self.mechanism == "gaussian" and self.delta == 0:
            raise ValueError("the gaussian mechanism needs delta > 0 (e.g. 1e-8)")
        if self.delta_budget is not None and self.delta_budget < self.delta:
            raise ValueError("delta_budget cannot be smaller than delta (no job could ever run)")
        for column, values in self.public_groups.items():
            if not values:
                raise ValueError(f"public_groups.{column}: list at least one public value")
            if len(set(values)) != len(values):
                raise ValueError(f"public_groups.{column}: values must be distinct")
        return self

    def rows_per_unit(self, table: str) -> int:
        """Rows of one unit kept from ``table`` (1 for a table the mapping does not name)."""
        if isinstance(self.max_rows_per_unit, int):
            return self.max_rows_per_unit
        lowered = {name.lower(): m for name, m in self.max_rows_per_unit.items()}
        return lowered.get(table.lower(), 1)

    @property
    def total_delta(self) -> float:
        """The lineage's delta budget (``delta_budget``, else ``delta`` × jobs the epsilon budget allows)."""
        if self.delta_budget is not None:
            return self.delta_budget
        return self.delta * math.floor(self.budget / self.epsilon_per_job + 1e-9)


#: The DP settings of the first scope format, always part of a scope's canonical form.
_FIRST_DP_SETTINGS = frozenset({"epsilon_per_job", "budget", "delta"})


class Dominance(_Strict):
    """Dominance (n, k) and p% rules on SQL results (``policies/cell_rules.py``): a row whose sum or
    mean a few units dominate, or in which fewer than ``min_units`` units' values differ from the row's
    typical value, is withheld. Python jobs' ``aggregate()`` applies the same rules always.

    >>> Dominance().n, Dominance().k, Dominance().p_percent
    (2, 0.85, 10.0)
    """

    n: Annotated[int, Field(ge=1, le=5)] = 2
    k: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.85
    p_percent: Annotated[float, Field(ge=0.0, le=100.0)] = 10.0


class Disclosure(_Strict):
    min_units: Annotated[int, Field(ge=1)] = 10
    suppression: Literal["drop", "remainder"] = "drop"
    rounding: Literal["none"] | Rounding = "none"
    max_rows: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    dp: DifferentialPrivacy | None = None
    #: Off (None) by default; ``{}`` turns the rules on with their defaults.
    dominance: Dominance | None = None


class JobBudget(_Strict):
    """A scope's own per-job budget: it can lower the deployment's limits, never raise them."""

    cpu_s: Annotated[int, Field(ge=1, le=86_400)] | None = None
    timeout_s: Annotated[float, Field(gt=0, le=86_400)] | None = None


class PythonSettings(_Strict):
    allowed: bool = False
    modules: tuple[str, ...] = ()


class Approvals(_Strict):
    required: Annotated[int, Field(ge=1, le=10)] = 2


class Review(_Strict):
    """Output checkers who must each release a withheld result (two: independent four-eyes review)."""

    checkers: Literal[1, 2] = 1


class UsageHours(_Strict):
    """When the scope's purpose implies work happens: jobs outside these hours raise an alert on unusual
    use (``policies/usage_alerts.py``), they are not refused. Hours are local to ``utc_offset_minutes``;
    ``start`` is inclusive, ``end`` exclusive; days are ISO weekdays (1 = Monday).

    >>> UsageHours(start=8, end=18).weekdays
    (1, 2, 3, 4, 5)
    """

    start: Annotated[int, Field(ge=0, le=23)] = 8
    end: Annotated[int, Field(ge=1, le=24)] = 18
    weekdays: tuple[Annotated[int, Field(ge=1, le=7)], ...] = (1, 2, 3, 4, 5)
    utc_offset_minutes: Annotated[int, Field(ge=-720, le=840)] = 0

    @model_validator(mode="after")
    def _order(self) -> Self:
        if self.end <= self.start:
            raise ValueError("hours.end must be after hours.start")
        return self


class CrossDomain(_Strict):
    """How a cross-domain job hands each person's values over (docs/cross-domain.md, "Two ways to hand
    values over"): ``shares`` (additive shares, fast; the other domain learns each released cell's size
    and which of the owner's padded positions it covers) or ``paillier`` (encrypted under the owner's
    key; no domain learns anything, at one 2048-bit encryption per person).

    >>> CrossDomain().values, CrossDomain(values="paillier").values
    ('shares', 'paillier')
    """

    values: Literal["shares", "paillier"] = "shares"


class Scope(_Strict):
    """A grant from policy officers to operators.

    >>> s = load_scope('''
    ... scope: demo
    ... purpose: counts by district
    ... grantees: [operator:alice]
    ... valid: {from: 2026-01-01, until: 2026-12-31}
    ... datasets:
    ...   health-bureau/citizens:
    ...     columns: {district: {use: group}}
    ... ''')
    >>> s.name, s.disclosure.min_units, len(s.version_id)
    ('demo', 10, 64)
    >>> s.is_grantee("alice", ())
    True
    """

    name: str = Field(alias="scope")
    purpose: Annotated[str, Field(min_length=1, max_length=2000)]
    grantees: tuple[str, ...]
    valid: Validity
    datasets: dict[str, DatasetGrant]
    disclosure: Disclosure = Field(default_factory=Disclosure)
    python: PythonSettings = Field(default_factory=PythonSettings)
    approvals: Approvals = Field(default_factory=Approvals)
    review: Review = Field(default_factory=Review)
    # Optional: CPU seconds and wall-clock seconds each job of this scope may use (lowers the deployment's).
    job_budget: JobBudget = Field(default_factory=JobBudget)
    # Optional: the working hours the purpose implies (alerts on unusual use, never a refusal).
    hours: UsageHours | None = None
    # Optional: how cross-domain jobs of this scope hand values over (shares unless set).
    cross_domain: CrossDomain = Field(default_factory=CrossDomain)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("scope name must be lowercase letters, digits, '.', '_' or '-' (max 128)")
        return value

    @field_validator("grantees")
    @classmethod
    def _grantees(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one grantee is required ('operator:<name>' or 'group:<name>')")
        for grantee in value:
            if not _GRANTEE.match(grantee):
                raise ValueError(f"grantee {grantee!r} must be 'operator:<name>' or 'group:<name>'")
        return value

    @field_validator("datasets")
    @classmethod
    def _datasets(cls, value: dict[str, DatasetGrant]) -> dict[str, DatasetGrant]:
        if not value:
            raise ValueError("at least one dataset is required")
        for key in value:
            if not _DATASET_KEY.match(key):
                raise ValueError(f"dataset key {key!r} must be 'domain/dataset' or 'domain/dataset/table'")
        return value

    def canonical_json(self) -> str:
        """Sorted-key, compact JSON of the whole document: the input of ``version_id``."""
        data = self.model_dump(mode="json", by_alias=True)
        if self.review == Review():
            # Added after the first scopes were approved: left out at its default so their ids stay.
            del data["review"]
        if self.job_budget == JobBudget():
            del data["job_budget"]  # likewise
        if self.disclosure.dominance is None:
            del data["disclosure"]["dominance"]  # likewise
        if self.hours is None:
            del data["hours"]  # likewise
        if self.cross_domain == CrossDomain():
            del data["cross_domain"]  # likewise
        dp = self.disclosure.dp
        if dp is not None:
            # The settings added after the first three (epsilon per job, budget, delta) likewise.
            defaults = DifferentialPrivacy(epsilon_per_job=dp.epsilon_per_job, budget=dp.budget)
            shown = data["disclosure"]["dp"]
            for name in DifferentialPrivacy.model_fields:
                if name not in _FIRST_DP_SETTINGS and getattr(dp, name) == getattr(defaults, name):
                    shown.pop(DifferentialPrivacy.model_fields[name].alias or name, None)
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @cached_property
    def version_id(self) -> str:
        """SHA-256 (hex) of the canonical form."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

    def version_id_with(self, hash_hex: Callable[[bytes], str]) -> str:
        """The version id under another hash of the canonical form: a deployment's crypto profile passes
        its own (``crypto.profile``: SM3 under ``gm``); :attr:`version_id` is the SHA-256 one.

        >>> from policies.dp.examples import dp_scope
        >>> scope = dp_scope()
        >>> scope.version_id_with(lambda data: hashlib.sha256(data).hexdigest()) == scope.version_id
        True
        """
        return hash_hex(self.canonical_json().encode("utf-8"))

    def is_grantee(
        self, principal_name: str, groups: tuple[str, ...] | list[str], role: str = "operator"
    ) -> bool:
        """Whether an operator (by name or one of their groups) is granted this scope."""
        if role != "operator":
            return False
        if f"operator:{principal_name}" in self.grantees:
            return True
        return any(f"group:{group}" in self.grantees for group in groups)

    def validity_finding(self, today: date) -> Finding | None:
        """A finding when ``today`` is outside the validity window, else ``None``.

        >>> s = load_scope('{"scope": "x", "purpose": "p", "grantees": ["group:g"],'
        ...   ' "valid": {"from": "2026-01-01", "until": "2026-01-31"},'
        ...   ' "datasets": {"d/t": {}}}', fmt="json")
        >>> s.validity_finding(date(2026, 2, 1)).rule
        'scope_expired'
        """
        if today < self.valid.from_:
            return Finding("scope_not_yet_valid", f"scope {self.name!r} is valid from {self.valid.from_}")
        if today > self.valid.until:
            return Finding("scope_expired", f"scope {self.name!r} expired on {self.valid.until}")
        return None


def load_scope(text: str, *, fmt: Literal["yaml", "json"] = "yaml") -> Scope:
    """Parse and validate a scope document; ``ScopeInvalid`` lists every problem with its field.

    >>> load_scope("scope: x\\ncolour: red", fmt="yaml")
    Traceback (most recent call last):
    ...
    policies.errors.ScopeInvalid: scope document is invalid (5 problems)
    """
    try:
        data: Any = yaml.safe_load(text) if fmt == "yaml" else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ScopeInvalid(
            f"scope document is not valid {fmt.upper()}",
            findings=[Finding("scope_syntax", f"not valid {fmt.upper()}: {exc}")],
        ) from exc
    if not isinstance(data, dict):
        raise ScopeInvalid(
            "scope document must be a mapping",
            findings=[
                Finding("scope_syntax", "the document must be a mapping of fields (scope, purpose, ...)")
            ],
        )
    try:
        return Scope.model_validate(data)
    except ValidationError as exc:
        findings = [_finding_of(error) for error in exc.errors()]
        plural = "problem" if len(findings) == 1 else "problems"
        raise ScopeInvalid(
            f"scope document is invalid ({len(findings)} {plural})", findings=findings
        ) from exc


def _finding_of(error: Any) -> Finding:
    loc = tuple(error.get("loc", ()))
    where = ".".join(str(part) for part in loc) or "(document)"
    if error.get("type") == "extra_forbidden":
        allowed = _allowed_fields(loc[:-1])
        hint = f"; allowed fields here: {', '.join(allowed)}" if allowed else ""
        return Finding("scope_invalid", f"{where}: unknown field{hint}", where)
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return Finding("scope_invalid", f"{where}: {message}", where)


def _allowed_fields(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model at ``loc`` (dict keys and union tags skipped), for error messages."""
    model: Any = Scope
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if fields is None:
            return []
        by_alias = {info.alias or name: info for name, info in fields.items()}
        info = by_alias.get(str(part))
        if info is None:
            continue  # a dict key (dataset or column name) or a union member tag
        model = _model_in(info.annotation)
    fields = getattr(model, "model_fields", None)
    if fields is None:
        return []
    return sorted(info.alias or name for name, info in fields.items())


def _model_in(annotation: Any) -> Any:
    """The first pydantic model inside ``annotation`` (unwrapping dict/tuple/Optional/unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
