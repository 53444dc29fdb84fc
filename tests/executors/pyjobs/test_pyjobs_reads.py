"""Which tables a Python job's code reads, found before it runs: the gateway hands its sandbox only
those (under a scope over two domains), so the answer must cover every table the code can reach."""

from __future__ import annotations

import pytest

from executors.pyjobs.errors import PyJobError
from executors.pyjobs.reads import tables_read
from tests.executors.pyjobs.pyjobs_fixtures import people, run

NAMES = ("citizens", "visits", "benefits")


@pytest.mark.parametrize(
    ("code", "read"),
    [
        ("result = len(citizens)", {"citizens"}),
        ("result = len(tables['visits'])", {"visits"}),
        ("result = len(tables.get('visits'))", {"visits"}),
        ("x = visits.merge(citizens, on='person_id')\nresult = len(x)", {"citizens", "visits"}),
        # Read inside a function, or in a default argument: still read.
        ("def n(t=benefits):\n    return len(t)\nresult = n()", {"benefits"}),
        ("def n():\n    return len(citizens)\nresult = n()", {"citizens"}),
        # A shadowed name still counts (over-counting refuses or hands over a table, never hides one).
        ("citizens = 3\nresult = citizens", {"citizens"}),
        # Not a table: an attribute or a string with a table's name, and a name the scope does not grant.
        ("result = 'visits'", set()),
        ("import pandas as pd\nresult = pd.DataFrame().visits if False else 1", set()),
        ("result = len(tables['other'])", set()),
    ],
)
def test_literal_reads_name_exactly_the_tables(code: str, read: set[str]) -> None:
    assert tables_read(code, NAMES) == frozenset(read)


@pytest.mark.parametrize(
    "code",
    [
        "result = len(tables)",
        "result = [len(t) for t in tables.values()]",
        "name = 'citi' + 'zens'\nresult = len(tables[name])",
        "alias = tables\nresult = len(alias['visits'])",
        "result = len(tables.get('vis' + 'its'))",
        "def pick(ts):\n    return ts['visits']\nresult = len(pick(tables))",
        "result = 'visits' in tables",
        "result = len(globals()['visits'])",
        "result = (",  # does not parse: nothing can be known (the compiler refuses it anyway)
    ],
)
def test_a_computed_or_unknowable_access_counts_as_every_table(code: str) -> None:
    assert tables_read(code, NAMES) is None


@pytest.mark.parametrize(
    "code",
    [
        "result = len(people)",
        "result = len(tables['people'])",
        "result = len(tables.get('people'))",
        "def f():\n    return len(people)\nresult = f()",
    ],
)
def test_the_runtime_reaches_a_table_only_where_the_reads_name_it(code: str) -> None:
    """What the analysis names is what the runtime binds: a job handed only the tables it is found to
    read runs as with every table, and a table left out is not reachable at all."""
    frames = {"people": people(), "others": people(seed=3)}
    read = tables_read(code, frames)
    assert read == {"people"}
    assert run(code, {n: frames[n] for n in read}).summary == run(code, frames).summary
    with pytest.raises(PyJobError):
        run(code, {"others": frames["others"]})
