"""``citizens``: the civil-affairs register, one row per person."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from sandbox_api.cli.demo_data.columns import (
    as_frame,
    ascii_digits,
    fixed_width_strings,
    labels,
    national_id_check,
    prefixed_ids,
    weights,
)
from sandbox_api.cli.demo_data.names import (
    DEFAULT_SEED,
)
from sandbox_api.cli.demo_data.vocabulary import (
    DISTRICTS,
    EPOCH_2025,
    GIVEN_FEMALE,
    GIVEN_MALE,
    MAX_INCOME,
    SURNAMES,
    TINY_DISTRICTS,
)

# ---------------------------------------------------------------------------------------------------
# citizens
# ---------------------------------------------------------------------------------------------------


def _ages(rng: np.random.Generator, n: int) -> np.ndarray:
    """Ages 0..99 from a flattened population pyramid (fewer children, a long thin tail of elders)."""
    age = np.arange(100)
    shape = np.where(age < 20, 0.8, 1.0) * np.where(age > 60, np.exp(-(age - 60) / 12.0), 1.0)
    return rng.choice(100, size=n, p=shape / shape.sum())


def _districts(rng: np.random.Generator, n: int) -> np.ndarray:
    """District indices into ``DISTRICTS + TINY_DISTRICTS``."""
    codes = rng.choice(len(DISTRICTS), size=n, p=weights([d[2] for d in DISTRICTS]))
    tiny_total = sum(count for _, _, count in TINY_DISTRICTS)
    if n >= 20 * tiny_total:
        chosen = rng.choice(n, size=tiny_total, replace=False)
        start = 0
        for offset, (_, _, count) in enumerate(TINY_DISTRICTS):
            codes[chosen[start : start + count]] = len(DISTRICTS) + offset
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
    return np.asarray(np.round(np.minimum(income, MAX_INCOME), 2), dtype=np.float64)


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

    region = np.array([int(code) for _, code, _ in (*DISTRICTS, *TINY_DISTRICTS)], dtype=np.int64)
    dates = birth_days.astype("datetime64[D]")
    years = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    months = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
    days = (dates - dates.astype("datetime64[M]")).astype(np.int64) + 1
    yyyymmdd = years * 10_000 + months * 100 + days
    digits = np.concatenate(
        [
            ascii_digits(region[district_codes], 6),
            ascii_digits(yyyymmdd, 8),
            ascii_digits(sequence, 3),
        ],
        axis=1,
    )
    check = national_id_check(digits - 48)
    return fixed_width_strings(np.concatenate([digits, check[:, np.newaxis]], axis=1))


def citizens(n: int = 200_000, *, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """The civil-affairs citizen register: one row per person, ``person_id`` is the privacy unit.

    Columns: person_id, national_id, name, phone, birth_date, sex, district, income.
    """
    rng = np.random.default_rng(seed)
    ages = _ages(rng, n)
    birth_days = EPOCH_2025 - 1 - (ages * 365.25).astype(np.int64) - rng.integers(0, 365, size=n)
    male = rng.random(n) < 0.49
    district_codes = _districts(rng, n)

    surname = rng.choice(len(SURNAMES), size=n, p=weights([s[1] for s in SURNAMES]))
    given_female = rng.integers(0, len(GIVEN_FEMALE), size=n)
    given_male = rng.integers(0, len(GIVEN_MALE), size=n)
    given = np.where(male, len(GIVEN_FEMALE) + given_male, given_female)
    given_names = (*GIVEN_FEMALE, *GIVEN_MALE)
    # Every possible full name once, then index: no per-row string concatenation.
    full_names = [f"{last} {first}" for last, _ in SURNAMES for first in given_names]
    names = labels(full_names, surname * len(given_names) + given)

    # Mobile numbers: 1 + network digit + 9 digits, drawn without replacement so they are unique.
    network = np.array([3, 5, 7, 8, 9])[rng.integers(0, 5, size=n)]
    subscriber = rng.choice(1_000_000_000, size=n, replace=False)
    phones = fixed_width_strings(ascii_digits(10_000_000_000 + network * 1_000_000_000 + subscriber, 11))

    district_names = [name for name, _, _ in (*DISTRICTS, *TINY_DISTRICTS)]
    return as_frame(
        {
            "person_id": prefixed_ids("P", np.arange(1, n + 1), 7),
            "national_id": _national_ids(district_codes, birth_days, male),
            "name": names,
            "phone": phones,
            "birth_date": pa.array(birth_days.astype("datetime64[D]")),
            "sex": labels(("F", "M"), male.astype(np.int64)),
            "district": labels(district_names, district_codes),
            "income": pa.array(_incomes(rng, ages)),
        }
    )
