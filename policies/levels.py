"""Classification levels: the floors a deployment sets, per level of data, that no scope can go below.

A dataset version carries a level (its manifest's ``level``, else the deployment's default). Each level
maps to a *floor*: the smallest ``min_units`` a scope may set, the uses each column class may be
granted, the classes whose values must be masked wherever a grant lets them shape an answer,
whether differential privacy is required, whether Python jobs may be allowed, and how many officers
must approve. ``level_findings`` names every floor a scope breaks, for every dataset it grants, so that
an officer sees all of them at once (docs/governance.md has the defaults and how to change them).

Pure: the levels document arrives as text or a mapping; nothing here reads a file or a clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from policies.catalog import Catalog, ColumnClass, TableSchema
from policies.errors import ScopeInvalid, UnknownReference
from policies.findings import Finding
from policies.model import ColumnRule, Scope, Use

ALL_USES: frozenset[Use] = frozenset(Use)
# Uses under which a column's own values can shape what an operator receives: a grouping key, a
# condition, a plain value. A class whose floor requires masks needs one under these uses; a join key
# never leaves the engine and an aggregate argument only leaves inside a sum over at least k units.
REVEALING_USES: frozenset[Use] = frozenset({Use.FILTER, Use.GROUP, Use.PLAIN})
LEVEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Floor(_Strict):
    """What every scope on data of one level must at least require."""

    min_units: Annotated[int, Field(ge=1)] = 10
    # Uses each column class may be granted; a class not listed may be granted any use.
    uses: dict[ColumnClass, frozenset[Use]] = Field(default_factory=dict)
    # Classes whose columns need a mask under a revealing use (filter, group, plain).
    masks: frozenset[ColumnClass] = frozenset()
    dp: bool = Field(default=False, description="differential privacy required")
    python: bool = Field(default=True, description="Python jobs may be allowed")
    approvals: Annotated[int, Field(ge=1, le=10)] = 2

    def allowed_uses(self, cls: ColumnClass) -> frozenset[Use]:
        # A grant may always deny: the floor narrows what is granted, never forces a grant.
        return self.uses.get(cls, ALL_USES) | {Use.DENY}


class Level(_Strict):
    title: Annotated[str, Field(min_length=1, max_length=200)]
    floor: Floor = Field(default_factory=Floor)


class Levels(_Strict):
    """A deployment's levels, from least to most sensitive, and the level of undeclared data."""

    levels: dict[Annotated[str, Field(pattern=LEVEL_NAME)], Level] = Field(min_length=1)
    default: str

    @model_validator(mode="after")
    def _default_is_defined(self) -> Levels:
        if self.default not in self.levels:
            raise ValueError(f"the default level {self.default!r} is not one of {sorted(self.levels)}")
        return self

    def floor_of(self, level: str | None) -> tuple[str, Floor]:
        """The level a table's declaration resolves to, and its floor (UnknownReference if undefined)."""
        name = self.default if level is None else level
        found = self.levels.get(name)
        if found is None:
            raise UnknownReference(
                f"level {name!r} is not defined in this deployment (defined: {', '.join(self.levels)})"
            )
        return name, found.floor


_ID = ColumnClass.IDENTIFYING
_SENSITIVE = ColumnClass.SENSITIVE
_INTERNAL = ColumnClass.INTERNAL
# An identifying column may join; shown or filtered on only through a mask (the floor's ``masks``).
_MASKED_ID = frozenset({Use.JOIN_KEY, Use.FILTER, Use.GROUP})

#: The levels a deployment gets unless it defines its own (docs/governance.md, "Classification levels").
DEFAULT_LEVELS = Levels(
    default="L3",
    levels={
        "L1": Level(title="public", floor=Floor(min_units=1)),
        "L2": Level(
            title="internal",
            floor=Floor(min_units=5, uses={_ID: _MASKED_ID}, masks=frozenset({_ID})),
        ),
        "L3": Level(
            title="sensitive",
            floor=Floor(
                min_units=10,
                uses={_ID: _MASKED_ID, _SENSITIVE: ALL_USES - {Use.PLAIN}},
                masks=frozenset({_ID}),
            ),
        ),
        "L4": Level(
            title="highly sensitive",
            floor=Floor(
                min_units=20,
                uses={
                    _ID: frozenset({Use.JOIN_KEY}),
                    _SENSITIVE: frozenset({Use.FILTER, Use.AGGREGATE, Use.GROUP}),
                    _INTERNAL: ALL_USES - {Use.PLAIN},
                },
                masks=frozenset({_SENSITIVE}),
                dp=True,
                python=False,
                approvals=3,
            ),
        ),
    },
)


def load_levels(text: str, *, fmt: str = "yaml") -> Levels:
    """Parse a levels document (YAML or JSON) into ``Levels``; ScopeInvalid names every wrong field.

    >>> load_levels("default: open\\nlevels: {open: {title: open data, floor: {min_units: 1}}}").default
    'open'
    """
    try:
        raw: Any = json.loads(text) if fmt == "json" else yaml.safe_load(text)
        return Levels.model_validate(raw)
    except (ValueError, yaml.YAMLError) as exc:
        errors = exc.errors() if isinstance(exc, ValidationError) else []
        raise ScopeInvalid(
            "the classification levels document is not valid",
            findings=[
                Finding("levels_invalid", str(e["msg"]), ".".join(str(p) for p in e["loc"])) for e in errors
            ]
            or [Finding("levels_invalid", str(exc))],
        ) from exc


def level_findings(scope: Scope, catalog: Catalog, levels: Levels) -> tuple[Finding, ...]:
    """Every floor ``scope`` breaks on the levels of the tables it grants (empty when none).

    Grants on tables the catalog lacks are left to ``check_scope``, which names them.

    >>> from policies.examples import example_catalog, example_scope
    >>> [f.rule for f in level_findings(example_scope(), example_catalog(), DEFAULT_LEVELS)]
    []
    >>> strict = Levels(default="top", levels={"top": Level(title="top", floor=Floor(min_units=50, dp=True))})
    >>> [f.rule for f in level_findings(example_scope(), example_catalog(), strict)]
    ['level_min_units', 'level_dp_required']
    """
    out: list[Finding] = []
    for key, grant in sorted(scope.datasets.items()):
        try:
            table = catalog.table(key)
        except UnknownReference:
            continue
        try:
            name, floor = levels.floor_of(table.level)
        except UnknownReference as exc:
            out.append(Finding("level_unknown", exc.detail, key))
            continue
        out.extend(_scope_floors(scope, key, name, floor))
        out.extend(_column_floors(key, name, floor, grant.columns, table))
    return tuple(dict.fromkeys(out))


def _scope_floors(scope: Scope, key: str, level: str, floor: Floor) -> Iterator[Finding]:
    where = f"{key} is {level}"
    if scope.disclosure.min_units < floor.min_units:
        yield Finding(
            "level_min_units",
            f"{where}: disclosure.min_units must be at least {floor.min_units} "
            f"(the scope sets {scope.disclosure.min_units})",
            "disclosure.min_units",
        )
    if floor.dp and scope.disclosure.dp is None:
        yield Finding(
            "level_dp_required",
            f"{where}: differential privacy is required; add disclosure.dp with a budget",
            "disclosure.dp",
        )
    if not floor.python and scope.python.allowed:
        yield Finding(
            "level_python_not_allowed",
            f"{where}: Python jobs may not be allowed; set python.allowed to false",
            "python.allowed",
        )
    if scope.approvals.required < floor.approvals:
        yield Finding(
            "level_approvals",
            f"{where}: approvals.required must be at least {floor.approvals} "
            f"(the scope sets {scope.approvals.required})",
            "approvals.required",
        )


def _column_floors(
    key: str, level: str, floor: Floor, rules: Mapping[str, ColumnRule], table: TableSchema
) -> Iterator[Finding]:
    classes = {column.name.lower(): column.cls for column in table.columns}
    for column, rule in sorted(rules.items()):
        cls = classes.get(column.lower())
        if cls is None:
            continue  # an unknown column is check_scope's finding
        allowed = floor.allowed_uses(cls)
        if rule.use not in allowed:
            names = ", ".join(sorted(u.value for u in allowed))
            yield Finding(
                "level_column_use",
                f"{key} is {level}: {cls.value} column {column!r} may not be granted {rule.use.value}; "
                f"allowed: {names}",
                f"datasets.{key}.columns.{column}",
            )
        elif cls in floor.masks and rule.use in REVEALING_USES and rule.mask is None:
            yield Finding(
                "level_mask_required",
                f"{key} is {level}: {cls.value} column {column!r} needs a mask to be granted "
                f"{rule.use.value} (generalize, partial, keyed_hash, ...)",
                f"datasets.{key}.columns.{column}",
            )
