"""A small, seeded, realistic fixture for attacking the policy engine.

Two tables of one domain, both keyed by the privacy unit ``person_id``:

* ``citizens``: one row per person. District sizes are skewed on purpose: a 'Military Zone' that the
  scope's row filter hides (large enough to pass the k threshold if the filter were lost), a tiny
  'Lonely Isle' with two people, a 'Small Town' just below k, one person with the rare sex 'X' inside
  the largest district, a billionaire above the income bound, and a column the scope never names.
* ``visits``: zero or more rows per person, with rare diagnoses, one heavy user on 'Lonely Isle'
  with hundreds of visits (counting rows instead of people makes that group look large), and a cost
  above its bound.

Every protected value is made distinctive so that finding it in a released table is not a coincidence:
identifiers carry letter prefixes, dates never fall on the first of a month (so generalised dates can
never equal a raw one), money always has four decimals, the last one non-zero.

The helpers execute a query the engine rewrote on in-memory DuckDB (locked down, with the keyed-hash
function registered) and pass the result through ``policies.check_output``, and they check a released
table for protected values independently of the engine.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

import policies

SEED = 20260101
MIN_UNITS = 5
TEST_HASH_KEY = b"red-team-test-key"
INCOME_BOUNDS = (0.0, 1_000_000.0)
COST_BOUNDS = (0.0, 10_000.0)

CITIZENS_DATASET = "health-bureau/citizens"
VISITS_DATASET = "health-bureau/visits"

DISTRICT_SIZES: Mapping[str, int] = {
    "Central": 210,
    "North": 150,
    "Harbor": 120,
    "Hills": 80,
    "Riverside": 40,
    "Military Zone": 7,
    "Small Town": 4,
    "Lonely Isle": 2,
}
HIDDEN_DISTRICT = "Military Zone"
TINY_DISTRICT = "Lonely Isle"
SMALL_DISTRICT = "Small Town"

FACILITIES = ("General Hospital", "North Clinic", "Harbor Clinic", "Hills Practice", "Telehealth")
ISLE_FACILITY = "Isle Clinic"
COMMON_DIAGNOSES = ("J10.1", "J11.1", "I10", "E11.9", "M54.5", "Z00.0", "F32.9")
RARE_DIAGNOSIS = "A98.4"  # exactly one person
RARE_DIAGNOSIS_3 = "B20"  # exactly three people

FIRST_NAMES = (
    "Anna", "Ben", "Clara", "David", "Elif", "Farid", "Greta", "Hamid", "Ines", "Jonas",
    "Katja", "Lukas", "Mara", "Nils", "Olga", "Paul", "Rosa", "Sven", "Tariq", "Ute",
)  # fmt: skip
LAST_NAMES = (
    "Schmidt", "Yilmaz", "Nowak", "Weber", "Hoffmann", "Kaya", "Becker", "Kowalski",
    "Fischer", "Demir", "Wagner", "Lange", "Kraus", "Vogel", "Brandt", "Ziegler",
)  # fmt: skip

SCOPE_YAML = f"""\
scope: red-team-study
purpose: "Adversarial test fixture for the policy engine"
grantees: [operator:mallory, group:red-team]
valid: {{from: 2020-01-01, until: 2099-12-31}}
datasets:
  {CITIZENS_DATASET}:
    unit: person_id
    row_filter: "district <> '{HIDDEN_DISTRICT}'"
    columns:
      person_id:    {{use: join_key}}
      national_id:  {{use: deny}}
      name:         {{use: deny}}
      phone:        {{mask: {{partial: {{keep_last: 2}}}}, use: group}}
      birth_date:   {{mask: {{generalize: year}}, use: group}}
      sex:          {{use: group}}
      district:     {{use: group}}
      postcode:     {{mask: {{generalize: {{prefix: 3}}}}, use: group}}
      household_id: {{mask: keyed_hash, use: group}}
      income:       {{use: aggregate, functions: [sum, avg, count], bounds: [0, 1000000]}}
  {VISITS_DATASET}:
    unit: person_id
    columns:
      visit_id:   {{use: deny}}
      person_id:  {{use: join_key}}
      visit_date: {{mask: {{generalize: month}}, use: group}}
      facility:   {{use: plain}}
      diagnosis:  {{use: filter}}
      cost:       {{use: aggregate, functions: [sum, avg, count], bounds: [0, 10000]}}
disclosure:
  min_units: {MIN_UNITS}
  suppression: drop
  rounding: none
  max_rows: 10000
  dp: null
python: {{allowed: true, modules: [pandas, numpy, math, statistics]}}
approvals: {{required: 2}}
"""

# Column roles as the scope above declares them; `email` is in the catalog but not in the scope, so it
# is implicitly `deny`.
DENY_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "citizens": ("national_id", "name", "email"),
    "visits": ("visit_id",),
}
JOIN_KEY_COLUMNS: Mapping[str, tuple[str, ...]] = {"citizens": ("person_id",), "visits": ("person_id",)}
FILTER_COLUMNS: Mapping[str, tuple[str, ...]] = {"citizens": (), "visits": ("diagnosis",)}
AGGREGATE_COLUMNS: Mapping[str, tuple[str, ...]] = {"citizens": ("income",), "visits": ("cost",)}
MASKED_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "citizens": ("phone", "birth_date", "postcode", "household_id"),
    "visits": ("visit_date",),
}


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    citizens: pd.DataFrame
    visits: pd.DataFrame

    def frames(self) -> dict[str, pd.DataFrame]:
        return {"citizens": self.citizens, "visits": self.visits}

    @property
    def visible_citizens(self) -> pd.DataFrame:
        """Citizens after the scope's row filter."""
        return self.citizens[self.citizens["district"] != HIDDEN_DISTRICT]


def _money(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    """Money with four decimals whose last digit is never zero.

    An average of n such values is a multiple of 1e-4/n, so a released aggregate that equals a raw value
    exactly is a leak, not a coincidence (with cents, an average of 16 visits did hit a raw cost).
    """
    ticks = np.round(values * 10_000).astype(np.int64)
    ticks[ticks % 10 == 0] += rng.integers(1, 9, size=int((ticks % 10 == 0).sum()))
    return ticks / 10_000.0


def _dates_not_on_first(rng: np.random.Generator, start: dt.date, end: dt.date, n: int) -> list[dt.date]:
    span = (end - start).days
    out: list[dt.date] = []
    while len(out) < n:
        day = start + dt.timedelta(days=int(rng.integers(0, span)))
        if day.day != 1:
            out.append(day)
    return out


def _unique_codes(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    out: list[int] = []
    seen: set[int] = set()
    while len(out) < n:
        v = int(rng.integers(low, high))
        if v not in seen:
            seen.add(v)
            out.append(v)
    return np.array(out, dtype=np.int64)


@cache
def build_fixture() -> Fixture:
    rng = np.random.default_rng(SEED)
    districts = [d for d, size in DISTRICT_SIZES.items() for _ in range(size)]
    n = len(districts)
    person_ids = [f"P{v:07d}" for v in _unique_codes(rng, n, 1_000_000, 9_999_999)]
    national_ids = [f"{v:011d}" for v in _unique_codes(rng, n, 10**10, 10**11 - 1)]
    names = [f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}" for _ in range(n)]
    # Phones: '+4930' then 7 random digits; all the same length so a masked phone has a fixed shape.
    phones = [f"+4930{v:07d}" for v in _unique_codes(rng, n, 1_000_000, 9_999_999)]
    birth_dates = _dates_not_on_first(rng, dt.date(1930, 1, 1), dt.date(2008, 12, 31), n)
    sex = rng.choice(["F", "M"], size=n).astype(object)
    postcode_prefix = {d: f"{i + 1}{i + 3}" for i, d in enumerate(DISTRICT_SIZES)}
    postcodes = [f"{postcode_prefix[d]}{int(rng.integers(100, 999))}" for d in districts]
    # Households of one to five people within a district.
    household_ids: list[str] = []
    codes = iter(_unique_codes(rng, n, 100_000, 999_999))
    i = 0
    while i < n:
        size = int(rng.integers(1, 6))
        code = f"H{next(codes):06d}"
        for _ in range(size):
            if i < n:
                household_ids.append(code)
                i += 1
    incomes = _money(rng, rng.lognormal(mean=10.4, sigma=0.7, size=n))
    incomes = np.clip(incomes, 1000.0013, 900_000.9917)
    income_col: list[float | None] = [float(v) for v in incomes]
    emails = [f"user{v}@example.org" for v in _unique_codes(rng, n, 10_000, 99_999)]

    citizens = pd.DataFrame(
        {
            "person_id": person_ids,
            "national_id": national_ids,
            "name": names,
            "phone": phones,
            "birth_date": birth_dates,
            "sex": sex,
            "district": districts,
            "postcode": postcodes,
            "household_id": household_ids,
            "income": income_col,
            "email": emails,
        }
    )
    central = citizens.index[citizens["district"] == "Central"]
    # One person with a rare value of a group column, inside the largest district.
    citizens.loc[central[3], "sex"] = "X"
    citizens.loc[central[3], "income"] = 73_219.4317
    # A billionaire above the income bound.
    citizens.loc[central[7], "income"] = 5_432_109.8731
    # Some people without a known income.
    for idx in central[20:26]:
        citizens.loc[idx, "income"] = None
    citizens.loc[citizens["district"] == TINY_DISTRICT, "name"] = [
        "Zebulon Quarrington",
        "Ysolde Quarrington",
    ]

    visits = _build_visits(rng, citizens)
    citizens["birth_date"] = pd.to_datetime(citizens["birth_date"]).dt.date
    return Fixture(citizens=citizens, visits=visits)


def _build_visits(rng: np.random.Generator, citizens: pd.DataFrame) -> pd.DataFrame:
    central = citizens.loc[citizens["district"] == "Central", "person_id"].tolist()
    isle = citizens.loc[citizens["district"] == TINY_DISTRICT, "person_id"].tolist()
    # Who gets the rare diagnoses, the heavy use and the cost above the bound.
    rare: dict[str, str] = {central[11]: RARE_DIAGNOSIS, **{pid: RARE_DIAGNOSIS_3 for pid in central[40:43]}}
    expensive = central[50]
    forced_counts = {isle[0]: 300, isle[1]: 4, **{pid: 2 for pid in rare}, expensive: 2}
    rows: list[tuple[str, str]] = []
    for pid, district in zip(citizens["person_id"], citizens["district"], strict=True):
        count = forced_counts.get(pid, int(rng.poisson(2.0)))
        for _ in range(count):
            facility = ISLE_FACILITY if district == TINY_DISTRICT else str(rng.choice(FACILITIES))
            rows.append((pid, facility))
    n = len(rows)
    visit_ids = [f"V{v:08d}" for v in _unique_codes(rng, n, 10_000_000, 99_999_999)]
    dates = _dates_not_on_first(rng, dt.date(2024, 1, 1), dt.date(2025, 12, 31), n)
    diagnoses = [str(d) for d in rng.choice(COMMON_DIAGNOSES, size=n)]
    costs = _money(rng, rng.lognormal(mean=5.5, sigma=0.9, size=n))
    costs = np.clip(costs, 5.0013, 9_500.9917)
    cost_col = [float(c) for c in costs]
    seen: set[str] = set()
    for i, (pid, _) in enumerate(rows):
        if pid in rare:
            diagnoses[i] = rare[pid]
        if pid == expensive and pid not in seen:
            cost_col[i] = 25_000.3713
        seen.add(pid)
    return pd.DataFrame(
        {
            "visit_id": visit_ids,
            "person_id": [pid for pid, _ in rows],
            "visit_date": dates,
            "facility": [f for _, f in rows],
            "diagnosis": diagnoses,
            "cost": cost_col,
        }
    )


# --------------------------------------------------------------------------------------------------
# Catalog and scope
# --------------------------------------------------------------------------------------------------

CITIZENS_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("person_id", "VARCHAR", "identifying"),
    ("national_id", "VARCHAR", "identifying"),
    ("name", "VARCHAR", "identifying"),
    ("phone", "VARCHAR", "identifying"),
    ("birth_date", "DATE", "sensitive"),
    ("sex", "VARCHAR", "internal"),
    ("district", "VARCHAR", "internal"),
    ("postcode", "VARCHAR", "internal"),
    ("household_id", "VARCHAR", "identifying"),
    ("income", "DOUBLE", "sensitive"),
    ("email", "VARCHAR", "identifying"),
)
VISITS_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("visit_id", "VARCHAR", "internal"),
    ("person_id", "VARCHAR", "identifying"),
    ("visit_date", "DATE", "sensitive"),
    ("facility", "VARCHAR", "public"),
    ("diagnosis", "VARCHAR", "sensitive"),
    ("cost", "DOUBLE", "sensitive"),
)


def _table(name: str, columns: Iterable[tuple[str, str, str]], rows: int) -> policies.TableSchema:
    return policies.TableSchema(
        name=name,
        unit="person_id",
        columns=tuple(
            policies.ColumnSchema(name=c, type=t, cls=policies.ColumnClass(k), domain=None)
            for c, t, k in columns
        ),
        row_count=rows,
    )


@cache
def build_catalog() -> policies.Catalog:
    fx = build_fixture()
    citizens = policies.DatasetSchema(
        domain="health-bureau",
        name="citizens",
        version_id="0" * 64,
        tables=(_table("citizens", CITIZENS_COLUMNS, len(fx.citizens)),),
    )
    visits = policies.DatasetSchema(
        domain="health-bureau",
        name="visits",
        version_id="1" * 64,
        tables=(_table("visits", VISITS_COLUMNS, len(fx.visits)),),
    )
    return policies.Catalog(datasets=(citizens, visits))


@cache
def build_scope() -> policies.Scope:
    return policies.load_scope(SCOPE_YAML, fmt="yaml")


def check(sql: str) -> policies.CheckReport:
    return policies.check(sql, build_scope(), build_catalog())


def prepare(sql: str) -> policies.PreparedQuery:
    return policies.prepare(sql, build_scope(), build_catalog())


# --------------------------------------------------------------------------------------------------
# Masks as the scope declares them, computed independently of the engine
# --------------------------------------------------------------------------------------------------


def keyed_hash(value: str) -> str:
    """HMAC-SHA256 (RFC 2104) as lowercase hex, truncated to 32 characters."""
    return hmac.new(TEST_HASH_KEY, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def mask_phone(raw: str) -> str:
    return "***" + raw[-2:] if len(raw) > 2 else "***"


def mask_birth_date(raw: dt.date) -> Any:
    return dt.date(raw.year, 1, 1)


def mask_visit_date(raw: dt.date) -> Any:
    return dt.date(raw.year, raw.month, 1)


def mask_postcode(raw: str) -> str:
    return raw[:3]


def mask_household(raw: str) -> str:
    return keyed_hash(raw)


MASKS: Mapping[str, Callable[[Any], Any]] = {
    "phone": mask_phone,
    "birth_date": mask_birth_date,
    "postcode": mask_postcode,
    "household_id": mask_household,
    "visit_date": mask_visit_date,
}


def masked(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as the scope lets a query see it: masks applied, bounds clamped."""
    out = frame.copy()
    for col, fn in MASKS.items():
        if col in out.columns:
            out[col] = out[col].map(lambda v, f=fn: None if v is None else f(v))
    if "income" in out.columns:
        out["income"] = out["income"].clip(*INCOME_BOUNDS)
    if "cost" in out.columns:
        out["cost"] = out["cost"].clip(*COST_BOUNDS)
    return out


# --------------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------------


def execute_sql(sql: str, *, frames: Mapping[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Run SQL on a locked-down in-memory DuckDB with the fixture tables and the keyed-hash UDF."""
    fx = build_fixture()
    tables = dict(frames) if frames is not None else fx.frames()
    con = duckdb.connect(":memory:")
    try:
        for name, frame in tables.items():
            con.register(name, frame)
        con.create_function("sbx_keyed_hash", keyed_hash, ["VARCHAR"], "VARCHAR")
        con.execute("SET enable_external_access = false")
        con.execute("SET autoinstall_known_extensions = false")
        con.execute("SET autoload_known_extensions = false")
        con.execute("SET lock_configuration = true")
        return con.execute(sql).df()
    finally:
        con.close()


def execute_prepared(prepared: policies.PreparedQuery) -> pd.DataFrame:
    """The raw result of the rewritten SQL, hidden `_sbx_` columns included."""
    fx = build_fixture()
    frames = {ref.sql_name: fx.frames()[ref.table] for ref in prepared.tables}
    return execute_sql(prepared.sql, frames=frames)


def run_rewritten(prepared: policies.PreparedQuery) -> pd.DataFrame:
    """Execute the rewritten SQL and apply the output check: the table a user would receive."""
    raw = execute_prepared(prepared)
    released = policies.check_output(raw, build_scope().disclosure)
    return released.table


# --------------------------------------------------------------------------------------------------
# Independent safety checks over a released table
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProtectedValues:
    strings: frozenset[str]
    numbers: tuple[float, ...]


@cache
def protected_values() -> ProtectedValues:
    """Every value a released table must never contain.

    deny / join_key / filter / aggregate columns, the raw value of every masked column, and the
    columns the scope does not name. Dates are included as ISO strings.
    """
    fx = build_fixture()
    strings: set[str] = set()
    numbers: set[float] = set()
    for table, frame in fx.frames().items():
        cols = (
            DENY_COLUMNS[table]
            + JOIN_KEY_COLUMNS[table]
            + FILTER_COLUMNS[table]
            + AGGREGATE_COLUMNS[table]
            + MASKED_COLUMNS[table]
        )
        for col in cols:
            for value in frame[col].dropna().unique():
                if isinstance(value, float | np.floating):
                    numbers.add(float(value))
                    if col in AGGREGATE_COLUMNS[table]:
                        lo, hi = INCOME_BOUNDS if col == "income" else COST_BOUNDS
                        numbers.add(min(max(float(value), lo), hi))
                else:
                    strings.add(value.isoformat() if isinstance(value, dt.date) else str(value))
    # Clamping to a bound yields the bound itself, which is not a person's value.
    numbers -= {INCOME_BOUNDS[1], COST_BOUNDS[1], 0.0}
    return ProtectedValues(strings=frozenset(strings), numbers=tuple(sorted(numbers)))


def _number_leaks(value: float, numbers: tuple[float, ...]) -> bool:
    if not math.isfinite(value):
        return False
    idx = int(np.searchsorted(numbers, value))
    for j in (idx - 1, idx):
        if 0 <= j < len(numbers) and math.isclose(numbers[j], value, rel_tol=1e-9, abs_tol=1e-9):
            return True
    return False


_HEX = frozenset("0123456789abcdef")


def _substring_safe(value: str) -> bool:
    """Whether finding `value` inside a longer text is evidence of a leak, not a coincidence.

    Short all-hex strings (postcodes) can occur by chance inside keyed-hash tokens or numbers.
    """
    return len(value) >= 8 or (len(value) >= 5 and not set(value) <= _HEX)


@cache
def _substring_values() -> tuple[str, ...]:
    return tuple(sorted(s for s in protected_values().strings if _substring_safe(s)))


def _string_leak(text: str, strings: frozenset[str], *, exact_only: bool = False) -> str | None:
    if text in strings:
        return text
    if exact_only:
        return None
    for s in _substring_values():
        if s in text:
            return s
    return None


def leaks_in_text(text: str, *, ignore: str = "") -> list[str]:
    """Protected values inside free text (an error message), except those already in `ignore`."""
    hits = [s for s in protected_values().strings if _substring_safe(s) and s in text and s not in ignore]
    return sorted(hits)


def _flatten(value: Any) -> Iterable[Any]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield k
            yield from _flatten(v)
    elif isinstance(value, list | tuple | set | frozenset | np.ndarray):
        for v in value:
            yield from _flatten(v)
    else:
        yield value


def find_leaks(table: pd.DataFrame) -> list[str]:
    """Protected values found anywhere in a released table (column names included)."""
    pv = protected_values()
    leaks: list[str] = []
    for col in table.columns:
        hit = _string_leak(str(col), pv.strings)
        if hit is not None:
            leaks.append(f"column name {col!r} contains {hit!r}")
    for col in table.columns:
        for value in table[col].tolist():
            for atom in _flatten(value):
                leak = _atom_leak(atom, pv)
                if leak is not None:
                    leaks.append(f"{col}: {leak}")
    return leaks


def _atom_leak(atom: Any, pv: ProtectedValues) -> str | None:
    if atom is None or (isinstance(atom, float) and math.isnan(atom)):
        return None
    if isinstance(atom, bool | np.bool_):
        return None
    if isinstance(atom, int | np.integer):
        hit = _string_leak(str(int(atom)), pv.strings, exact_only=True)
        return None if hit is None else f"integer {atom} equals {hit!r}"
    if isinstance(atom, float | np.floating):
        if _number_leaks(float(atom), pv.numbers):
            return f"number {atom!r} equals a protected value"
        if float(atom).is_integer():
            hit = _string_leak(str(int(atom)), pv.strings, exact_only=True)
            return None if hit is None else f"number {atom!r} equals {hit!r}"
        return None
    if isinstance(atom, pd.Timestamp | dt.datetime):
        text = atom.date().isoformat()
    elif isinstance(atom, dt.date):
        text = atom.isoformat()
    elif isinstance(atom, bytes):
        text = atom.decode("utf-8", "replace")
    else:
        text = str(atom)
    hit = _string_leak(text, pv.strings)
    return None if hit is None else f"{text[:80]!r} contains {hit!r}"


def assert_no_leak(table: pd.DataFrame) -> None:
    leaks = find_leaks(table)
    assert not leaks, f"protected values released: {leaks[:5]}"
    hidden = [c for c in table.columns if str(c).lower().startswith("_sbx_")]
    assert not hidden, f"hidden columns released: {hidden}"
    assert HIDDEN_DISTRICT not in _all_strings(table), "a row behind the row filter was released"


def _all_strings(table: pd.DataFrame) -> set[str]:
    out: set[str] = set()
    for col in table.columns:
        for value in table[col].tolist():
            for atom in _flatten(value):
                if isinstance(atom, str):
                    out.add(atom)
    return out


def normalise_key(value: Any) -> Any:
    """A released key value in a form comparable with pandas-computed keys."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp | dt.datetime):
        return value.date()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def units_by(frame: pd.DataFrame, keys: list[str], *, unit: str = "person_id") -> dict[tuple[Any, ...], int]:
    """Distinct privacy units per group, computed with pandas (the independent k oracle)."""
    if not keys:
        return {(): int(frame[unit].nunique())}
    grouped = frame.groupby(keys, dropna=False)[unit].nunique()
    return {
        tuple(normalise_key(k) for k in (key if isinstance(key, tuple) else (key,))): int(v)
        for key, v in grouped.items()
    }


def assert_k_anonymous(
    table: pd.DataFrame, keys: list[str], oracle: Mapping[tuple[Any, ...], int], *, k: int = MIN_UNITS
) -> None:
    """Every released row's key must be a group the oracle knows, with at least k distinct units."""
    positions = [_position(table, c) for c in keys]
    for row in table.itertuples(index=False):
        key = tuple(normalise_key(row[p]) for p in positions)
        assert key in oracle, f"released row {key} does not correspond to any group of the fixture"
        assert oracle[key] >= k, f"released row {key} stands for only {oracle[key]} people (k={k})"


# --------------------------------------------------------------------------------------------------
# Attack cases and how they are judged
# --------------------------------------------------------------------------------------------------

#: Every rule id the engine may answer with for one kind of violation. One place, so the mapping from
#: "what the attack does" to "which rule must fire" is visible and reviewable.
EXPECTED_RULES: Mapping[str, frozenset[str]] = {
    "deny": frozenset({"column_denied"}),
    "unknown_column": frozenset({"unknown_column"}),
    "unknown_table": frozenset({"unknown_table", "qualified_table"}),
    "join_key": frozenset({"join_key_use"}),
    "filter": frozenset({"filter_use"}),
    "aggregate_col": frozenset({"aggregate_use"}),
    "aggregate_fn": frozenset({"aggregate_function", "function_not_allowed"}),
    "group_col": frozenset({"group_use"}),
    "raw_output": frozenset({"aggregate_only"}),
    "window": frozenset({"window_function"}),
    "table_function": frozenset({"table_function", "file_access", "values_table"}),
    "system": frozenset({"system_function", "system_catalog"}),
    "statement": frozenset({"single_statement", "read_only", "parse_error"}),
    "syntax": frozenset({"parse_error", "syntax_not_allowed"}),
    "positional": frozenset({"positional_reference"}),
    "whole_row": frozenset({"whole_row_reference", "struct_access"}),
    "star": frozenset({"star_expansion"}),
    "error_oracle": frozenset(
        {
            "cast_on_protected",
            "cast_not_allowed",
            "function_not_allowed",
            "unsafe_arithmetic",
            "implicit_cast",
        }
    ),
    "reserved": frozenset({"reserved_name"}),
    "lambda": frozenset({"function_not_allowed"}),
    "lateral": frozenset({"lateral"}),
    "subquery": frozenset({"scalar_subquery", "derived_limit"}),
    "limit": frozenset({"limit_not_literal"}),
    "pivot": frozenset({"syntax_not_allowed"}),
}

Extra = Callable[[pd.DataFrame], None]
Oracle = Callable[[Fixture], Mapping[tuple[Any, ...], int]]


@dataclass(frozen=True)
class Attack:
    """One attack query.

    ``expect="reject"``: the engine must refuse it, with a finding from one of ``rules`` (categories of
    ``EXPECTED_RULES``). ``expect="safe"``: refusing is fine; if the engine allows it, the rewritten SQL
    is executed and the released table must hold no protected value, every row must stand for at least
    ``MIN_UNITS`` people according to ``oracle`` (computed with pandas from the fixture, keyed by the
    output columns ``keys``), and ``extra`` must hold.
    """

    id: str
    sql: str
    expect: str
    rules: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    oracle: Oracle | None = None
    extra: Extra | None = None


def reject(id: str, sql: str, *rules: str) -> Attack:
    assert rules, "a rejection names the categories of rules that must fire"
    for rule in rules:
        assert rule in EXPECTED_RULES, rule
    return Attack(id=id, sql=sql, expect="reject", rules=rules)


def safe(
    id: str,
    sql: str,
    *,
    keys: tuple[str, ...] = (),
    oracle: Oracle | None = None,
    extra: Extra | None = None,
) -> Attack:
    return Attack(id=id, sql=sql, expect="safe", keys=keys, oracle=oracle, extra=extra)


def expected_rule_ids(categories: Iterable[str]) -> frozenset[str]:
    out: set[str] = set()
    for category in categories:
        out |= EXPECTED_RULES[category]
    return frozenset(out)


def assert_attack(attack: Attack) -> None:
    report = check(attack.sql)
    if attack.expect == "reject":
        found = {f.rule for f in report.findings}
        assert not report.allowed, f"attack was allowed; rewritten SQL: {report.rewritten_sql}"
        wanted = expected_rule_ids(attack.rules)
        assert found & wanted, f"refused, but with {sorted(found)}; expected one of {sorted(wanted)}"
        _assert_prepare_refuses(attack.sql)
        return
    if not report.allowed:
        assert report.findings, "a refusal must carry at least one finding"
        _assert_prepare_refuses(attack.sql)
        return
    assert_released_safely(attack.sql, keys=attack.keys, oracle=attack.oracle, extra=attack.extra)


def _assert_prepare_refuses(sql: str) -> None:
    with pytest.raises(policies.PolicyViolation) as raised:
        prepare(sql)
    assert raised.value.findings, "PolicyViolation without findings"


def assert_released_safely(
    sql: str,
    *,
    keys: Iterable[str] = (),
    oracle: Oracle | None = None,
    extra: Extra | None = None,
) -> pd.DataFrame | None:
    """Prepare, execute and output-check an allowed query; assert the safety properties.

    Returns the released table, or ``None`` when DuckDB refused to run the rewritten SQL (then its error
    message must not carry a protected value that the query text does not already contain).
    """
    prepared = prepare(sql)
    try:
        raw = execute_prepared(prepared)
    except duckdb.Error as exc:
        leaked = leaks_in_text(str(exc), ignore=sql)
        assert not leaked, f"error message carries protected values: {leaked[:3]}"
        return None
    assert "_sbx_units" in {str(c).lower() for c in raw.columns}, "rewritten SQL lacks the _sbx_units column"
    table = policies.check_output(raw, build_scope().disclosure).table
    assert_no_leak(table)
    if oracle is not None:
        assert_k_anonymous(table, list(keys), oracle(build_fixture()))
    if extra is not None:
        extra(table)
    return table


# Extra checks ------------------------------------------------------------------------------------


def released_nothing(table: pd.DataFrame) -> None:
    assert len(table) == 0, f"expected nothing to be released, got {len(table)} rows:\n{table.head()}"


def at_most_one_value(column: str) -> Extra:
    """The column is computed from a masked value in a way that collapses to one value per mask."""

    def _check(table: pd.DataFrame) -> None:
        values = {normalise_key(v) for v in table.iloc[:, _position(table, column)].tolist()}
        assert len(values) <= 1, f"{column} shows {len(values)} values; the mask allows at most one: {values}"

    return _check


def never_value(column: str, value: Any) -> Extra:
    def _check(table: pd.DataFrame) -> None:
        values = {normalise_key(v) for v in table.iloc[:, _position(table, column)].tolist()}
        assert value not in values, f"{column} released {value!r}"

    return _check


def _position(table: pd.DataFrame, column: str) -> int:
    lowered = [str(c).lower() for c in table.columns]
    assert column.lower() in lowered, f"column {column!r} not in released columns {list(table.columns)}"
    return lowered.index(column.lower())


# Oracles -----------------------------------------------------------------------------------------


def citizens_seen(fx: Fixture) -> pd.DataFrame:
    """Citizens as a query sees them: row filter applied, masks applied, bounds clamped."""
    return masked(fx.visible_citizens)


def visits_seen(fx: Fixture) -> pd.DataFrame:
    return masked(fx.visits)


def joined_seen(fx: Fixture) -> pd.DataFrame:
    return citizens_seen(fx).merge(visits_seen(fx), on="person_id", how="inner")


def units_oracle(
    frame: Callable[[Fixture], pd.DataFrame],
    keys: Iterable[str] = (),
    where: Callable[[pd.DataFrame], Any] | None = None,
) -> Oracle:
    """Distinct people per group of ``keys`` in ``frame`` (optionally filtered by ``where``)."""
    key_list = list(keys)

    def _oracle(fx: Fixture) -> Mapping[tuple[Any, ...], int]:
        data = frame(fx)
        if where is not None:
            data = data[where(data)]
        return units_by(data, key_list)

    return _oracle


def min_units_oracle(*oracles: Oracle) -> Oracle:
    """Per key, the smallest count among several cells (a FILTER cell counts only its subset)."""

    def _oracle(fx: Fixture) -> Mapping[tuple[Any, ...], int]:
        maps = [o(fx) for o in oracles]
        keys = set().union(*maps)
        return {k: min(m.get(k, 0) for m in maps) for k in keys}

    return _oracle
