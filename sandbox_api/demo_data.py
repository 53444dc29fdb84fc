"""Seeded, realistic demo data for the two demo domains, generated without the network.

``citizens`` is the civil-affairs register (one row per person); ``visits`` is the health-bureau's
record of clinic visits (many rows per person). Both are built column-wise with numpy and assembled as
Arrow arrays, so a million visits take about a second; the same seed always gives the same frame.

The data is shaped to exercise the product rather than to be pretty: district sizes are skewed and
include a ``Military Zone`` (which the demo scope filters out) and two tiny districts (which the output
check must suppress), incomes are log-normal with a handful of very large values (which aggregate bounds
must clip), a few people visit very often (so counting visits is not counting people) and some
diagnoses are rare (so a naive group-by would single people out).

>>> people = citizens(1_000, seed=1)
>>> people.shape, people["person_id"].iloc[0]
((1000, 8), 'P0000001')
>>> all(national_id_is_valid(value) for value in people["national_id"])
True
>>> visits(people, 5_000, seed=1).shape
(5000, 6)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

CIVIL_AFFAIRS: Final = "civil-affairs"
HEALTH_BUREAU: Final = "health-bureau"
CITIZENS_DATASET: Final = "citizens"
VISITS_DATASET: Final = "visits"
DEMO_SCOPE_NAME: Final = "flu-study-2026"
DEFAULT_SEED: Final = 20260101

# Day numbers (days since 1970-01-01) of the reference dates used below.
_EPOCH_2025: Final = int(np.datetime64("2025-01-01", "D").astype(np.int64))
_VISIT_DAYS: Final = 730  # 2025-01-01 .. 2026-12-31

# ---------------------------------------------------------------------------------------------------
# Built-in vocabularies. Frequencies are rough shares from published name and population statistics;
# only their shape (a few very common values, a long tail) matters for the demo.
# ---------------------------------------------------------------------------------------------------

_SURNAMES: Final[tuple[tuple[str, float], ...]] = (
    ("Wang", 7.1),
    ("Li", 7.0),
    ("Zhang", 6.6),
    ("Liu", 5.3),
    ("Chen", 4.5),
    ("Yang", 3.1),
    ("Huang", 2.2),
    ("Zhao", 2.0),
    ("Wu", 1.9),
    ("Zhou", 1.8),
    ("Xu", 1.5),
    ("Sun", 1.4),
    ("Ma", 1.3),
    ("Zhu", 1.2),
    ("Hu", 1.1),
    ("Guo", 1.1),
    ("He", 1.0),
    ("Gao", 1.0),
    ("Lin", 1.0),
    ("Luo", 0.9),
    ("Zheng", 0.9),
    ("Liang", 0.8),
    ("Xie", 0.7),
    ("Song", 0.6),
    ("Tang", 0.6),
    ("Han", 0.5),
    ("Feng", 0.5),
    ("Deng", 0.5),
    ("Cao", 0.5),
    ("Peng", 0.5),
    ("Zeng", 0.4),
    ("Xiao", 0.4),
    ("Tian", 0.4),
    ("Dong", 0.4),
    ("Pan", 0.4),
    ("Yuan", 0.4),
    ("Cai", 0.3),
    ("Jiang", 0.3),
    ("Yu", 0.3),
    ("Du", 0.3),
    ("Ye", 0.3),
    ("Cheng", 0.3),
    ("Wei", 0.3),
    ("Su", 0.3),
    ("Lu", 0.3),
    ("Ding", 0.2),
    ("Ren", 0.2),
    ("Shen", 0.2),
    ("Yao", 0.2),
    ("Ouyang", 0.02),
    ("Zhuge", 0.002),
    ("Sima", 0.002),
)
_GIVEN_FEMALE: Final[tuple[str, ...]] = (
    "Fang",
    "Xiuying",
    "Na",
    "Min",
    "Jing",
    "Li",
    "Yan",
    "Juan",
    "Xiulan",
    "Xia",
    "Ping",
    "Gang",
    "Guiying",
    "Hong",
    "Yu",
    "Lan",
    "Ying",
    "Hui",
    "Qian",
    "Ting",
    "Xue",
    "Lin",
    "Mei",
    "Dan",
    "Yun",
    "Lili",
    "Jie",
    "Yue",
    "Shu",
    "Rong",
    "Xiaoyan",
    "Haiyan",
    "Jingjing",
    "Yanhong",
    "Wenjing",
    "Xinyi",
    "Zihan",
    "Yutong",
    "Ruoxi",
    "Shiyu",
)
_GIVEN_MALE: Final[tuple[str, ...]] = (
    "Wei",
    "Qiang",
    "Lei",
    "Jun",
    "Yong",
    "Jie",
    "Tao",
    "Ming",
    "Chao",
    "Hua",
    "Bin",
    "Hui",
    "Peng",
    "Gang",
    "Hao",
    "Bo",
    "Long",
    "Kai",
    "Liang",
    "Feng",
    "Xin",
    "Dong",
    "Rui",
    "Jian",
    "Zhiqiang",
    "Jianhua",
    "Guoqiang",
    "Haitao",
    "Xiaoming",
    "Jianguo",
    "Zhiwei",
    "Yuxuan",
    "Haoran",
    "Zimo",
    "Yichen",
    "Zihao",
    "Junjie",
    "Tianyu",
    "Mingzhe",
    "Boyang",
)

# District name, administrative code (the first six digits of a national ID), share of the population.
_DISTRICTS: Final[tuple[tuple[str, str, float], ...]] = (
    ("Central", "110101", 0.19),
    ("Riverside", "110102", 0.15),
    ("North Gate", "110105", 0.12),
    ("East Harbour", "110106", 0.10),
    ("West Hills", "110107", 0.09),
    ("Old Town", "110108", 0.08),
    ("Lakeside", "110109", 0.06),
    ("Southfield", "110111", 0.05),
    ("University", "110112", 0.04),
    ("Industrial Park", "110113", 0.035),
    ("Green Valley", "110114", 0.025),
    ("Airport", "110115", 0.015),
    ("Military Zone", "110116", 0.02),
)
# Tiny districts get a fixed number of residents whatever the table size, so that a group-by over
# districts always has groups below any sensible threshold.
_TINY_DISTRICTS: Final[tuple[tuple[str, str, int], ...]] = (
    ("Lighthouse Island", "110117", 6),
    ("Saltmarsh", "110118", 14),
)

# Diagnosis label (ICD-10 code and name), share among visits outside / inside the flu season, base cost.
_DIAGNOSES: Final[tuple[tuple[str, float, float, float], ...]] = (
    ("Z00 General check-up", 0.16, 0.12, 80.0),
    ("J06 Upper respiratory infection", 0.12, 0.16, 120.0),
    ("J11 Influenza", 0.015, 0.14, 180.0),
    ("I10 Hypertension", 0.13, 0.11, 150.0),
    ("E11 Type 2 diabetes", 0.09, 0.08, 210.0),
    ("M54 Back pain", 0.08, 0.06, 160.0),
    ("K29 Gastritis", 0.06, 0.05, 140.0),
    ("J45 Asthma", 0.04, 0.05, 170.0),
    ("F32 Depressive episode", 0.04, 0.04, 230.0),
    ("S93 Sprained ankle", 0.05, 0.03, 190.0),
    ("H10 Conjunctivitis", 0.04, 0.03, 90.0),
    ("L20 Atopic dermatitis", 0.03, 0.03, 110.0),
    ("N39 Urinary tract infection", 0.04, 0.03, 130.0),
    ("O80 Childbirth", 0.015, 0.012, 4200.0),
    ("I21 Acute myocardial infarction", 0.004, 0.006, 18000.0),
    ("C50 Breast cancer", 0.003, 0.003, 9500.0),
    # Rare diagnoses: a handful of people in the whole table, the classic re-identification risk.
    ("A15 Tuberculosis", 0.00008, 0.0001, 2600.0),
    ("G35 Multiple sclerosis", 0.00002, 0.00002, 5400.0),
    ("E84 Cystic fibrosis", 0.000005, 0.000005, 7200.0),
    ("C92 Myeloid leukaemia", 0.000004, 0.000004, 21000.0),
)
_CHECK_UP: Final = next(i for i, d in enumerate(_DIAGNOSES) if d[0].startswith("Z00"))
_CHILDBIRTH: Final = next(i for i, d in enumerate(_DIAGNOSES) if d[0].startswith("O80"))
_CITY_FACILITIES: Final[tuple[tuple[str, float], ...]] = (
    ("City General Hospital", 0.45),
    ("Children's Hospital", 0.15),
    ("University Hospital", 0.25),
    ("Traditional Medicine Hospital", 0.15),
)
_MILITARY_HOSPITAL: Final = "Military Hospital"
_LOCAL_CLINIC_SHARE: Final = 0.6  # share of visits to the clinic of the patient's own district

_MAX_INCOME: Final = 50_000_000.0
_CHECK_CHARS: Final = np.frombuffer(b"10X98765432", dtype=np.uint8)
_ID_WEIGHTS: Final = np.array([pow(2, 17 - i, 11) for i in range(17)], dtype=np.int64)


@dataclass(frozen=True)
class DemoDataset:
    """One demo dataset: where it lives, its table and the manifest a steward uploads with it."""

    domain: str
    name: str
    description: str
    table: str
    frame: pd.DataFrame
    manifest: Mapping[str, Any]


# ---------------------------------------------------------------------------------------------------
# Small vectorised helpers
# ---------------------------------------------------------------------------------------------------


def _ascii_digits(values: np.ndarray, width: int) -> np.ndarray:
    """The decimal digits of non-negative integers as an (n, width) matrix of ASCII codes."""
    out = np.empty((values.shape[0], width), dtype=np.uint8)
    rest = values.astype(np.int64, copy=True)
    for position in range(width - 1, -1, -1):
        out[:, position] = 48 + rest % 10
        rest //= 10
    return out


def _fixed_width_strings(matrix: np.ndarray) -> pa.StringArray:
    """An (n, width) matrix of ASCII codes as an Arrow string array, one row per string, no copies."""
    rows, width = matrix.shape
    offsets = np.arange(0, rows * width + 1, width, dtype=np.int32)
    data = np.ascontiguousarray(matrix).tobytes()
    return pa.StringArray.from_buffers(rows, pa.py_buffer(offsets), pa.py_buffer(data))


def _prefixed_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.StringArray:
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    matrix = np.concatenate(
        [np.broadcast_to(head, (numbers.shape[0], head.size)), _ascii_digits(numbers, width)], axis=1
    )
    return _fixed_width_strings(matrix)


def _labels(vocabulary: Sequence[str], codes: np.ndarray) -> pa.Array:
    """Plain (not dictionary-encoded) strings, so the Parquet schema says VARCHAR and nothing else."""
    return pc.take(pa.array(list(vocabulary), type=pa.string()), pa.array(codes.astype(np.int32)))


def _weights(shares: Sequence[float]) -> np.ndarray:
    array = np.asarray(shares, dtype=np.float64)
    return np.asarray(array / array.sum(), dtype=np.float64)


def _as_frame(columns: Mapping[str, pa.Array]) -> pd.DataFrame:
    # Arrow-backed dtypes keep DATE as a date and strings as strings through the Parquet round trip.
    frame: pd.DataFrame = pa.table(dict(columns)).to_pandas(types_mapper=pd.ArrowDtype)
    return frame


# ---------------------------------------------------------------------------------------------------
# National IDs
# ---------------------------------------------------------------------------------------------------


def _national_id_check(digits: np.ndarray) -> np.ndarray:
    """ISO 7064 MOD 11-2 check characters (as ASCII codes) for rows of 17 digit values."""
    return np.asarray(_CHECK_CHARS[(digits.astype(np.int64) @ _ID_WEIGHTS) % 11], dtype=np.uint8)


def national_id_is_valid(national_id: str) -> bool:
    """Whether an 18-character national ID carries the right ISO 7064 MOD 11-2 check character.

    >>> national_id_is_valid("11010519491231002X")
    True
    >>> national_id_is_valid("110105194912310021")
    False
    """
    if len(national_id) != 18 or not national_id[:17].isdigit():
        return False
    digits = np.frombuffer(national_id[:17].encode("ascii"), dtype=np.uint8) - 48
    return bool(_national_id_check(digits[np.newaxis, :])[0] == ord(national_id[17]))


# ---------------------------------------------------------------------------------------------------
# citizens
# ---------------------------------------------------------------------------------------------------


def _ages(rng: np.random.Generator, n: int) -> np.ndarray:
    """Ages 0..99 from a flattened population pyramid (fewer children, a long thin tail of elders)."""
    age = np.arange(100)
    shape = np.where(age < 20, 0.8, 1.0) * np.where(age > 60, np.exp(-(age - 60) / 12.0), 1.0)
    return rng.choice(100, size=n, p=shape / shape.sum())


def _districts(rng: np.random.Generator, n: int) -> np.ndarray:
    """District indices into ``_DISTRICTS + _TINY_DISTRICTS``."""
    codes = rng.choice(len(_DISTRICTS), size=n, p=_weights([d[2] for d in _DISTRICTS]))
    tiny_total = sum(count for _, _, count in _TINY_DISTRICTS)
    if n >= 20 * tiny_total:
        chosen = rng.choice(n, size=tiny_total, replace=False)
        start = 0
        for offset, (_, _, count) in enumerate(_TINY_DISTRICTS):
            codes[chosen[start : start + count]] = len(_DISTRICTS) + offset
            start += count
    return codes


def _incomes(rng: np.random.Generator, ages: np.ndarray) -> np.ndarray:
    """Yearly income: none for minors, log-normal for adults, smaller pensions, a few fortunes."""
    n = ages.shape[0]
    income = np.asarray(rng.lognormal(mean=np.log(62_000.0), sigma=0.65, size=n), dtype=np.float64)
    income = np.where(ages >= 65, income * 0.45, income)
    income = np.where(ages < 18, 0.0, income)
    # About one adult in 5,000 earns 20 to 300 times the median: the values aggregate bounds must clip.
    fortunes = (rng.random(n) < 0.0002) & (ages >= 25)
    income = np.where(fortunes, income * rng.uniform(20.0, 300.0, size=n), income)
    return np.asarray(np.round(np.minimum(income, _MAX_INCOME), 2), dtype=np.float64)


def _national_ids(district_codes: np.ndarray, birth_days: np.ndarray, male: np.ndarray) -> pa.StringArray:
    """District code + birth date + a sequence number unique within (district, date) + check char.

    The sequence number is odd for men and even for women, as on real national IDs of this form.
    """
    n = district_codes.shape[0]
    key = district_codes.astype(np.int64) * 1_000_000 + (birth_days - birth_days.min())
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.r_[True, sorted_key[1:] != sorted_key[:-1]]
    position = np.arange(n)
    rank_sorted = position - np.maximum.accumulate(np.where(starts, position, 0))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = rank_sorted
    sequence = 2 * rank + 1 + np.where(male, 0, 1)  # 1, 3, 5 ... for men; 2, 4, 6 ... for women

    region = np.array([int(code) for _, code, _ in (*_DISTRICTS, *_TINY_DISTRICTS)], dtype=np.int64)
    dates = birth_days.astype("datetime64[D]")
    years = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    months = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
    days = (dates - dates.astype("datetime64[M]")).astype(np.int64) + 1
    yyyymmdd = years * 10_000 + months * 100 + days
    digits = np.concatenate(
        [
            _ascii_digits(region[district_codes], 6),
            _ascii_digits(yyyymmdd, 8),
            _ascii_digits(sequence, 3),
        ],
        axis=1,
    )
    check = _national_id_check(digits - 48)
    return _fixed_width_strings(np.concatenate([digits, check[:, np.newaxis]], axis=1))


def citizens(n: int = 200_000, *, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """The civil-affairs citizen register: one row per person, ``person_id`` is the privacy unit.

    Columns: person_id, national_id, name, phone, birth_date, sex, district, income.
    """
    rng = np.random.default_rng(seed)
    ages = _ages(rng, n)
    birth_days = _EPOCH_2025 - 1 - (ages * 365.25).astype(np.int64) - rng.integers(0, 365, size=n)
    male = rng.random(n) < 0.49
    district_codes = _districts(rng, n)

    surname = rng.choice(len(_SURNAMES), size=n, p=_weights([s[1] for s in _SURNAMES]))
    given_female = rng.integers(0, len(_GIVEN_FEMALE), size=n)
    given_male = rng.integers(0, len(_GIVEN_MALE), size=n)
    given = np.where(male, len(_GIVEN_FEMALE) + given_male, given_female)
    given_names = (*_GIVEN_FEMALE, *_GIVEN_MALE)
    # Every possible full name once, then index: no per-row string concatenation.
    full_names = [f"{last} {first}" for last, _ in _SURNAMES for first in given_names]
    names = _labels(full_names, surname * len(given_names) + given)

    # Mobile numbers: 1 + network digit + 9 digits, drawn without replacement so they are unique.
    network = np.array([3, 5, 7, 8, 9])[rng.integers(0, 5, size=n)]
    subscriber = rng.choice(1_000_000_000, size=n, replace=False)
    phones = _fixed_width_strings(_ascii_digits(10_000_000_000 + network * 1_000_000_000 + subscriber, 11))

    district_names = [name for name, _, _ in (*_DISTRICTS, *_TINY_DISTRICTS)]
    return _as_frame(
        {
            "person_id": _prefixed_ids("P", np.arange(1, n + 1), 7),
            "national_id": _national_ids(district_codes, birth_days, male),
            "name": names,
            "phone": phones,
            "birth_date": pa.array(birth_days.astype("datetime64[D]")),
            "sex": _labels(("F", "M"), male.astype(np.int64)),
            "district": _labels(district_names, district_codes),
            "income": pa.array(_incomes(rng, ages)),
        }
    )


# ---------------------------------------------------------------------------------------------------
# visits
# ---------------------------------------------------------------------------------------------------


def _visit_days(rng: np.random.Generator, n: int) -> np.ndarray:
    """Day offsets from 2025-01-01: a winter peak (mid-January) and quieter weekends."""
    day = np.arange(_VISIT_DAYS)
    season = 1.0 + 0.35 * np.cos(2.0 * np.pi * (day % 365 - 15) / 365.0)
    weekday = (day + 2) % 7  # 2025-01-01 was a Wednesday; 0 = Monday
    weight = season * np.where(weekday >= 5, 0.45, 1.0)
    return rng.choice(_VISIT_DAYS, size=n, p=weight / weight.sum())


def _facilities(rng: np.random.Generator, patient_district: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Most visits go to the patient's district clinic; the rest to the city hospitals."""
    all_districts = [name for name, _, _ in (*_DISTRICTS, *_TINY_DISTRICTS)]
    clinics = [
        _MILITARY_HOSPITAL if name == "Military Zone" else f"{name} Community Clinic"
        for name in all_districts
    ]
    vocabulary = clinics + [name for name, _ in _CITY_FACILITIES]
    n = patient_district.shape[0]
    city = len(clinics) + rng.choice(
        len(_CITY_FACILITIES), size=n, p=_weights([f[1] for f in _CITY_FACILITIES])
    )
    local = rng.random(n) < _LOCAL_CLINIC_SHARE
    return vocabulary, np.where(local, patient_district, city)


def visits(citizens_df: pd.DataFrame, n: int = 1_000_000, *, seed: int = DEFAULT_SEED + 1) -> pd.DataFrame:
    """The health-bureau visit log over the people of ``citizens_df``; ``person_id`` is the unit.

    Columns: visit_id, person_id, visit_date, facility, diagnosis, cost. Visits per person are
    heavy-tailed (gamma-distributed propensity, more for infants and the elderly).
    """
    rng = np.random.default_rng(seed)
    people = pa.Table.from_pandas(
        citizens_df[["person_id", "birth_date", "sex", "district"]], preserve_index=False
    )
    birth_days = people.column("birth_date").combine_chunks().cast(pa.int32()).to_numpy()
    ages = (_EPOCH_2025 - birth_days) / 365.25
    propensity = rng.gamma(shape=0.6, scale=1.0, size=ages.shape[0])
    propensity *= np.where(ages < 5, 2.0, 1.0) * np.where(ages > 65, 2.5, 1.0)
    patient = rng.choice(ages.shape[0], size=n, p=propensity / propensity.sum())

    district_names = [name for name, _, _ in (*_DISTRICTS, *_TINY_DISTRICTS)]
    district_lookup = {name: code for code, name in enumerate(district_names)}
    district_of_person = np.array(
        [district_lookup[name] for name in people.column("district").to_pylist()], dtype=np.int64
    )
    facility_names, facility_codes = _facilities(rng, district_of_person[patient])

    day = _visit_days(rng, n)
    month = (day.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)) % 12 + 1
    flu_season = (month >= 11) | (month <= 3)
    off = rng.choice(len(_DIAGNOSES), size=n, p=_weights([d[1] for d in _DIAGNOSES]))
    peak = rng.choice(len(_DIAGNOSES), size=n, p=_weights([d[2] for d in _DIAGNOSES]))
    diagnosis = np.where(flu_season, peak, off)
    # Childbirth only for women of child-bearing age; anyone else drawn there gets a check-up instead.
    patient_age = ages[patient]
    female = people.column("sex").to_numpy(zero_copy_only=False)[patient] == "F"
    impossible = (diagnosis == _CHILDBIRTH) & ~(female & (patient_age >= 16) & (patient_age <= 48))
    diagnosis = np.where(impossible, _CHECK_UP, diagnosis)
    base_cost = np.array([d[3] for d in _DIAGNOSES])[diagnosis]
    cost = np.round(base_cost * rng.lognormal(mean=0.0, sigma=0.45, size=n), 2)

    return _as_frame(
        {
            "visit_id": _prefixed_ids("V", np.arange(1, n + 1), 9),
            "person_id": people.column("person_id").combine_chunks().take(pa.array(patient)),
            "visit_date": pa.array((_EPOCH_2025 + day).astype("datetime64[D]")),
            "facility": _labels(facility_names, facility_codes),
            "diagnosis": _labels([d[0] for d in _DIAGNOSES], diagnosis),
            "cost": pa.array(cost),
        }
    )


# ---------------------------------------------------------------------------------------------------
# Manifests and the demo scope
# ---------------------------------------------------------------------------------------------------


def _column(name: str, type_: str, cls: str, domain: Mapping[str, Any] | None = None) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": type_, "class": cls}
    if domain is not None:
        column["domain"] = dict(domain)
    return column


def citizens_manifest() -> dict[str, Any]:
    """What the civil-affairs steward declares for ``citizens`` (upload manifest, DESIGN §3)."""
    districts = [name for name, _, _ in (*_DISTRICTS, *_TINY_DISTRICTS)]
    return {
        "tables": [
            {
                "name": "citizens",
                "unit": "person_id",
                "columns": [
                    _column("person_id", "VARCHAR", "identifying"),
                    _column("national_id", "VARCHAR", "identifying"),
                    _column("name", "VARCHAR", "identifying"),
                    _column("phone", "VARCHAR", "identifying"),
                    _column("birth_date", "DATE", "sensitive", {"low": "1924-01-01", "high": "2024-12-31"}),
                    _column("sex", "VARCHAR", "internal", {"categories": ["F", "M"]}),
                    _column("district", "VARCHAR", "internal", {"categories": districts}),
                    _column("income", "DOUBLE", "sensitive", {"low": 0, "high": _MAX_INCOME}),
                ],
            }
        ]
    }


def visits_manifest() -> dict[str, Any]:
    """What the health-bureau steward declares for ``visits``."""
    clinics = [name for name, _, _ in (*_DISTRICTS, *_TINY_DISTRICTS) if name != "Military Zone"]
    facilities = [
        *(f"{name} Community Clinic" for name in clinics),
        _MILITARY_HOSPITAL,
        *(name for name, _ in _CITY_FACILITIES),
    ]
    return {
        "tables": [
            {
                "name": "visits",
                "unit": "person_id",
                "columns": [
                    _column("visit_id", "VARCHAR", "internal"),
                    _column("person_id", "VARCHAR", "identifying"),
                    _column("visit_date", "DATE", "sensitive", {"low": "2025-01-01", "high": "2026-12-31"}),
                    _column("facility", "VARCHAR", "internal", {"categories": sorted(facilities)}),
                    _column("diagnosis", "VARCHAR", "sensitive", {"categories": [d[0] for d in _DIAGNOSES]}),
                    _column("cost", "DOUBLE", "sensitive", {"low": 0, "high": 200_000}),
                ],
            }
        ]
    }


def demo_scope_yaml(*, valid_from: date, valid_until: date, operator: str = "alice") -> str:
    """The demo scope (DESIGN §4) over both demo datasets, granted to ``operator`` and its group.

    >>> text = demo_scope_yaml(valid_from=date(2026, 1, 1), valid_until=date(2026, 12, 31))
    >>> text.splitlines()[0]
    'scope: flu-study-2026'
    """
    return f"""\
scope: {DEMO_SCOPE_NAME}
purpose: "Seasonal influenza burden by district, and what it costs"
grantees: [operator:{operator}, group:cdc-analysts]
valid: {{from: {valid_from.isoformat()}, until: {valid_until.isoformat()}}}
datasets:
  {CIVIL_AFFAIRS}/{CITIZENS_DATASET}:
    unit: person_id
    row_filter: "district <> 'Military Zone'"
    columns:
      person_id:   {{use: join_key}}
      national_id: {{use: deny}}
      name:        {{use: deny}}
      phone:       {{use: deny}}
      birth_date:  {{mask: {{generalize: decade}}, use: group}}
      sex:         {{use: group}}
      district:    {{use: group}}
      income:      {{use: aggregate, functions: [sum, avg, count], bounds: [0, 1000000]}}
  {HEALTH_BUREAU}/{VISITS_DATASET}:
    unit: person_id
    columns:
      visit_id:    {{use: deny}}
      person_id:   {{use: join_key}}
      visit_date:  {{mask: {{generalize: month}}, use: group}}
      facility:    {{use: group}}
      diagnosis:   {{use: group}}
      cost:        {{use: aggregate, functions: [sum, avg, count], bounds: [0, 50000]}}
disclosure:
  min_units: 10
  suppression: drop
  rounding: none
  max_rows: 10000
  dp: null
python: {{allowed: true, modules: [pandas, numpy, math, statistics]}}
approvals: {{required: 2}}
"""


def demo_datasets(
    *, citizens_n: int = 200_000, visits_n: int = 1_000_000, seed: int = DEFAULT_SEED
) -> tuple[DemoDataset, DemoDataset]:
    """Both demo datasets, generated from one seed, with their manifests."""
    people = citizens(citizens_n, seed=seed)
    return (
        DemoDataset(
            domain=CIVIL_AFFAIRS,
            name=CITIZENS_DATASET,
            description="Citizen register: one row per resident",
            table="citizens",
            frame=people,
            manifest=citizens_manifest(),
        ),
        DemoDataset(
            domain=HEALTH_BUREAU,
            name=VISITS_DATASET,
            description="Clinic and hospital visits, 2025-2026",
            table="visits",
            frame=visits(people, visits_n, seed=seed + 1),
            manifest=visits_manifest(),
        ),
    )
