"""Escape and leak attempts: each must be refused with a clear, typed error, and the runtime must stay
usable afterwards (all attempts run in this one process; the last tests check its health)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from executors.pyjobs import (
    AggregateOutput,
    CodeRejected,
    HelperError,
    JobRaised,
    PyJobError,
    SandboxViolation,
)

from .pyjobs_fixtures import people, run

V, C, R, H = SandboxViolation, CodeRejected, JobRaised, HelperError

# (id, code, error class, fragment of the detail)
ATTEMPTS: list[tuple[str, str, type[PyJobError], str]] = [
    # -- file, clipboard and network I/O: writers --------------------------------------------------
    ("to_csv", "people.to_csv('leak.csv')", V, "'to_csv' on DataFrame"),
    ("to_json", "people.to_json('leak.json')", V, "I/O is not available"),
    ("to_parquet", "people.to_parquet('leak.parquet')", V, "'to_parquet'"),
    ("to_pickle", "people.to_pickle('leak.pkl')", V, "'to_pickle'"),
    ("to_excel", "people.to_excel('leak.xlsx')", V, "'to_excel'"),
    ("to_html", "people.to_html('leak.html')", V, "'to_html'"),
    ("to_latex", "people.to_latex('leak.tex')", V, "'to_latex'"),
    ("to_markdown", "people.to_markdown('leak.md')", V, "'to_markdown'"),
    ("to_string_buf", "people.to_string(buf='leak.txt')", V, "'to_string'"),
    ("to_clipboard", "people.to_clipboard()", V, "'to_clipboard'"),
    ("to_feather", "people.to_feather('leak.feather')", V, "'to_feather'"),
    ("to_sql", "people.to_sql('t', 'sqlite:///leak.db')", V, "'to_sql'"),
    ("to_xml", "people.to_xml('leak.xml')", V, "'to_xml'"),
    ("series_to_csv", "people['name'].to_csv('leak.csv')", V, "'to_csv' on Series"),
    ("ndarray_tofile", "people['income'].to_numpy().tofile('leak.bin')", V, "'tofile' on ndarray"),
    ("ndarray_dump", "people['income'].to_numpy().dump('leak.npy')", V, "'dump' on ndarray"),
    ("np_save", "import numpy as np\nnp.save('leak.npy', [1])", V, "'save' is not available"),
    ("np_savetxt", "import numpy as np\nnp.savetxt('leak.txt', [1])", V, "'savetxt'"),
    ("class_unbound_to_csv", "import pandas as pd\npd.DataFrame.to_csv(people, 'leak.csv')", V, "'to_csv'"),
    # -- readers -----------------------------------------------------------------------------------
    (
        "read_csv",
        "import pandas as pd\nresult = pd.read_csv('/etc/passwd')",
        V,
        "'read_csv' is not available",
    ),
    ("read_pickle", "import pandas as pd\nresult = pd.read_pickle('x.pkl')", V, "'read_pickle'"),
    ("read_parquet", "import pandas as pd\nresult = pd.read_parquet('x')", V, "'read_parquet'"),
    ("read_clipboard", "import pandas as pd\nresult = pd.read_clipboard()", V, "'read_clipboard'"),
    ("np_load", "import numpy as np\nresult = np.load('x.npy', allow_pickle=True)", V, "'load'"),
    ("np_fromfile", "import numpy as np\nresult = np.fromfile('/etc/passwd')", V, "'fromfile'"),
    ("np_memmap", "import numpy as np\nresult = np.memmap('/etc/passwd')", V, "'memmap'"),
    ("np_loadtxt", "import numpy as np\nresult = np.loadtxt('/etc/passwd')", V, "'loadtxt'"),
    ("open_builtin", "result = open('/etc/passwd').read()", R, "NameError"),
    # -- string evaluation and name-resolving arguments --------------------------------------------
    ("df_query", "result = people.query('age > 30')", V, "string evaluation"),
    ("df_eval", "result = people.eval('age * 2')", V, "string evaluation"),
    ("pd_eval", "import pandas as pd\nresult = pd.eval('1+1')", V, "'eval' is not available"),
    ("agg_to_csv", "result = people.agg('to_csv', 'leak.csv')", V, "not allowed as a function name"),
    (
        "apply_to_pickle",
        "result = people.apply('to_pickle', path='leak.pkl')",
        V,
        "not allowed as a function",
    ),
    ("transform_eval", "result = people.transform('eval', 'age')", V, "not allowed as a function"),
    ("agg_numpy_save", "result = people['age'].agg('save', 'leak')", V, "not allowed as a function"),
    (
        "groupby_agg_named",
        "result = people.groupby('district').agg(x=('income', 'to_csv'))",
        V,
        "function name",
    ),
    (
        "groupby_agg_dict",
        "result = people.groupby('district').agg({'income': ['sum', 'to_json']})",
        V,
        "function",
    ),
    (
        "pivot_aggfunc",
        "import pandas as pd\nresult = pd.pivot_table(people, index='sex', values='age', aggfunc='to_csv')",
        V,
        "function name",
    ),
    ("agg_private", "result = people.agg('_constructor')", V, "function name"),
    ("exec_call", "exec('import os')", C, "Exec calls are not allowed"),
    ("eval_call", "result = eval('1')", C, "Eval calls are not allowed"),
    ("compile_builtin", "result = compile('1', 'x', 'eval')", R, "NameError"),
    # -- pickling ----------------------------------------------------------------------------------
    ("ndarray_dumps", "result = people['age'].to_numpy().dumps()", V, "'dumps'"),
    ("reduce_dunder", "result = people.__reduce__()", C, 'starts with "_"'),
    ("getattr_reduce_ex", "result = getattr(people, '__reduce_ex__')(2)", V, "private"),
    # -- styling, templating, format-string walks --------------------------------------------------
    ("style", "result = people.style", V, "styling and templating"),
    ("format_attr_walk", "result = '{0.columns}'.format(people)", V, "format fields may not read"),
    ("format_dunder_walk", "result = '{0.__class__}'.format(people)", V, "format fields may not read"),
    ("format_index_walk", "result = '{0[name]}'.format(people)", V, "format fields may not read"),
    ("format_nested_spec", "result = '{0:{1.real}}'.format(1, 2)", V, "format fields may not read"),
    ("format_unbound", "result = str.format('{0.shape}', people)", V, "format fields may not read"),
    ("format_map", "result = '{x}'.format_map({'x': 1})", V, "'format_map' on str"),
    ("plot", "people.plot()", V, "plotting is not available"),
    # -- attrs, flags, global state ----------------------------------------------------------------
    ("attrs_read", "result = people.attrs", V, "free-form metadata"),
    ("attrs_write", "people.attrs = {'x': 1}", V, "setting 'attrs'"),
    ("flags", "result = people.flags", V, "'flags' on DataFrame"),
    ("set_option", "import pandas as pd\npd.set_option('display.max_rows', 1)", V, "'set_option'"),
    ("options", "import pandas as pd\nresult = pd.options", V, "'options'"),
    ("np_seterr", "import numpy as np\nnp.seterr(all='ignore')", V, "'seterr'"),
    ("np_random_seed", "import numpy as np\nnp.random.seed(1)", V, "'seed' is not available"),
    ("info_prints", "people.info()", V, "info() writes to the process output"),
    ("module_setattr", "import numpy as np\nnp.pi = 3", V, "modifying ModuleView"),
    ("class_setattr", "import pandas as pd\npd.DataFrame.sum = None", V, "modifying type"),
    # -- walking from modules and objects to other modules -----------------------------------------
    ("pd_io_common_os", "import pandas as pd\nresult = pd.io.common.os", V, "'io' is not available"),
    ("np_ctypeslib", "import numpy as np\nresult = np.ctypeslib", V, "'ctypeslib'"),
    ("np_f2py", "import numpy as np\nresult = np.f2py", V, "'f2py'"),
    ("np_lib_stride_tricks", "import numpy as np\nresult = np.lib.stride_tricks", V, "'lib'"),
    ("np_testing", "import numpy as np\nresult = np.testing", V, "'testing'"),
    ("pd_api", "import pandas as pd\nresult = pd.api", V, "'api'"),
    ("pd_core", "import pandas as pd\nresult = pd.core", V, "'core'"),
    ("from_pandas_io", "from pandas import io", V, "'io' is not available"),
    ("import_submodule", "import pandas.io.common", V, "module 'pandas.io' is not available"),
    ("from_numpy_f2py", "from numpy import f2py", V, "'f2py'"),
    ("import_numpy_ctypeslib", "import numpy.ctypeslib", V, "module 'numpy.ctypeslib'"),
    ("import_os", "import os", V, "not in this scope's module list"),
    ("import_sys", "import sys", V, "not in this scope's module list"),
    ("import_subprocess", "import subprocess", V, "not in this scope's module list"),
    ("import_builtins", "import builtins", C, "reserved name"),
    ("import_importlib", "import importlib", V, "not in this scope's module list"),
    ("relative_import", "from . import x", V, "relative imports"),
    ("array_ctypes", "result = people['age'].to_numpy().ctypes", V, "'ctypes' on ndarray"),
    ("array_base", "result = people['age'].to_numpy().base", V, "'base' on ndarray"),
    ("np_empty", "import numpy as np\nresult = np.empty(10)", V, "'empty' is not available"),
    ("function_globals", "def f():\n    return 1\nresult = getattr(f, 'func_globals')", V, "on function"),
    ("method_self", "result = getattr(people.sum, 'im_self')", V, "not allowed"),
    ("dtype_type", "result = people['age'].dtype.type", V, "'type' on"),
    # -- dunder and private access -----------------------------------------------------------------
    ("dunder_class", "result = people.__class__", C, 'starts with "_"'),
    ("dunder_subclasses", "result = ().__class__.__bases__[0].__subclasses__()", C, 'starts with "_"'),
    ("getattr_dunder", "result = getattr(people, '__cl' + 'ass__')", V, "private"),
    ("private_mgr", "result = getattr(people, '_mgr')", V, "private"),
    ("dunder_name", "result = __builtins__", C, 'starts with "_"'),
    ("guard_name", "result = _getattr_", C, 'starts with "_"'),
    ("type_builtin", "result = type(people)", R, "NameError"),
    ("vars_builtin", "result = vars(people)", R, "NameError"),
    ("globals_builtin", "result = globals()", R, "NameError"),
    ("dir_builtin", "result = dir(people)", R, "NameError"),
    ("setattr_builtin", "setattr(people, 'x', 1)", R, "NameError"),
    ("class_def", "import pandas as pd\nclass Evil(pd.DataFrame):\n    pass", C, "Class definitions"),
    # -- frames, generators, tracebacks ------------------------------------------------------------
    ("gi_frame", "g = (x for x in [1])\nresult = g.gi_frame", C, "restricted name"),
    ("getattr_gi_frame", "g = (x for x in [1])\nresult = getattr(g, 'gi_' + 'frame')", V, "on generator"),
    ("yield", "def f():\n    yield 1", C, "Generator functions"),
    (
        "traceback",
        "try:\n    1/0\nexcept ZeroDivisionError as e:\n    result = e.__traceback__",
        C,
        'starts with "_"',
    ),
    (
        "with_traceback",
        "try:\n    1/0\nexcept ZeroDivisionError as e:\n    result = e.with_traceback",
        V,
        "'with_traceback'",
    ),
    (
        "tb_frame",
        "try:\n    1/0\nexcept ZeroDivisionError as e:\n    result = getattr(e, 'tb_frame')",
        V,
        "not allowed",
    ),
    ("bare_except_swallow", "try:\n    people.to_csv('leak.csv')\nexcept:\n    pass", C, "Bare 'except:'"),
    ("with_block", "with people as p:\n    pass", C, "'with' blocks"),
    # -- swallowing refusals -----------------------------------------------------------------------
    (
        "except_exception_swallow",
        "try:\n    people.to_csv('leak.csv')\nexcept Exception:\n    pass\nresult = 1",
        V,
        "'to_csv'",
    ),
    (
        "finally_return_swallow",
        "def f():\n    try:\n        people.to_csv('leak.csv')\n    finally:\n        return 1\nresult = f()",
        V,
        "'to_csv'",
    ),
    ("callback_swallow", "result = people['age'].map(lambda v: getattr(people, 'to_csv'))", V, "'to_csv'"),
    # -- SystemExit, KeyboardInterrupt -------------------------------------------------------------
    ("system_exit", "raise SystemExit(1)", R, "NameError"),
    ("keyboard_interrupt", "raise KeyboardInterrupt()", R, "NameError"),
    ("exit_builtin", "exit(1)", R, "NameError"),
    ("base_exception_name", "result = BaseException", R, "NameError"),
    # -- unit column and the aggregation helper ----------------------------------------------------
    ("unit_setitem", "people['person_id'] = 'x'", V, "read-only"),
    ("unit_loc", "people.loc[:, 'person_id'] = 'x'", V, "read-only"),
    ("unit_iloc_row", "people.iloc[0] = people.iloc[1]", V, "whole rows"),
    (
        "unit_columns_assign",
        "p = people.drop(columns=['person_id'])\np.columns = ['person_id', 'b', 'c', 'd', 'e', 'f']",
        V,
        "read-only",
    ),
    (
        "aggregate_by_unit",
        "result = aggregate(people, by='person_id', aggs={'n': ('age', 'count')})",
        H,
        "row-level",
    ),
    (
        "aggregate_invented_units",
        "p = people.drop(columns=['person_id'])\n"
        "p.insert(0, 'person_id', [str(i) for i in range(len(p))])\n"
        "result = aggregate(p, by='district', aggs={'n': ('age', 'count')})",
        H,
        "not this job's pseudonyms",
    ),
    (
        "aggregate_without_unit",
        "result = aggregate(people.drop(columns=['person_id']), by='district', aggs={'n': ('age', 'count')})",
        H,
        "must keep the unit column",
    ),
    (
        "aggregate_bad_function",
        "result = aggregate(people, by='district', aggs={'n': ('age', 'to_csv')})",
        H,
        "aggregate functions are",
    ),
    (
        "aggregate_reserved_output",
        "result = aggregate(people, by='district', aggs={'_sbx_units': ('age', 'count')})",
        H,
        "not start with '_'",
    ),
    # -- print misuse and exceptions carrying data -------------------------------------------------
    ("print_to_file", "print(people, file='leak.txt')", V, "no file="),
    ("exception_message_leak", "raise ValueError(str(people['name'].iloc[0]))", R, "ValueError at line 1"),
    ("keyerror_value_leak", "result = people[people['name'].iloc[0]]", R, "KeyError"),
]


def test_there_are_at_least_sixty_attempts() -> None:
    assert len(ATTEMPTS) >= 60
    assert len({a[0] for a in ATTEMPTS}) == len(ATTEMPTS)


@pytest.mark.parametrize(
    ("code", "error", "fragment"), [a[1:] for a in ATTEMPTS], ids=[a[0] for a in ATTEMPTS]
)
def test_attempt_is_refused(
    code: str, error: type[PyJobError], fragment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error) as raised:
        run(code)
    assert fragment in raised.value.detail
    assert list(tmp_path.iterdir()) == []  # nothing was written, whatever the attempt


def test_error_details_never_quote_data_values() -> None:
    for code in (
        "raise ValueError(str(people['name'].iloc[0]))",
        "result = people[people['name'].iloc[0]]",
        "result = getattr(people, people['name'].iloc[0])",
        "result = people.agg(people['name'].iloc[3])",
    ):
        with pytest.raises(PyJobError) as raised:
            run(code)
        assert "Secret-Name" not in raised.value.detail
        assert "Secret-Name" not in str(raised.value)


def test_the_callers_frames_are_not_modified() -> None:
    frame = people()
    before = frame.copy()
    run("people['age'] = 0\npeople.loc[:, 'income'] = 1.0\nresult = 1", {"people": frame})
    assert frame.equals(before)


def test_runtime_is_healthy_after_all_attempts() -> None:
    limit, handler = sys.getrecursionlimit(), signal.getsignal(signal.SIGVTALRM)
    for _ in range(3):
        with pytest.raises(SandboxViolation):
            run("people.to_csv('x')")
    out = run("result = aggregate(people, by='district', aggs={'mean_age': ('age', 'mean')})")
    assert isinstance(out, AggregateOutput)
    frame = people()
    expected = frame.groupby("district")["age"].mean()
    assert out.table.set_index("district")["mean_age"].to_dict() == pytest.approx(expected.to_dict())
    assert sys.getrecursionlimit() == limit
    assert signal.getsignal(signal.SIGVTALRM) == handler
