"""``visits``: the health-bureau's record of clinic visits, many rows per person."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from sandbox_api.cli.demo_data.columns import as_frame, labels, prefixed_ids, weights
from sandbox_api.cli.demo_data.names import (
    DEFAULT_SEED,
)
from sandbox_api.cli.demo_data.vocabulary import (
    CHECK_UP,
    CHILDBIRTH,
    CITY_FACILITIES,
    DIAGNOSES,
    DISTRICTS,
    EPOCH_2025,
    LOCAL_CLINIC_SHARE,
    MILITARY_HOSPITAL,
    TINY_DISTRICTS,
    VISIT_DAYS,
)

# ---------------------------------------------------------------------------------------------------
# visits
# ---------------------------------------------------------------------------------------------------


def _visit_days(rng: np.random.Generator, n: int) -> np.ndarray:
    """Day offsets from 2025-01-01: a winter peak (mid-January) and quieter weekends."""
    day = np.arange(VISIT_DAYS)
    season = 1.0 + 0.35 * np.cos(2.0 * np.pi * (day % 365 - 15) / 365.0)
    weekday = (day + 2) % 7  # 2025-01-01 was a Wednesday; 0 = Monday
    weight = season * np.where(weekday >= 5, 0.45, 1.0)
    return rng.choice(VISIT_DAYS, size=n, p=weight / weight.sum())


def _facilities(rng: np.random.Generator, patient_district: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Most visits go to the patient's district clinic; the rest to the city hospitals."""
    all_districts = [name for name, _, _ in (*DISTRICTS, *TINY_DISTRICTS)]
    clinics = [
        MILITARY_HOSPITAL if name == "Military Zone" else f"{name} Community Clinic" for name in all_districts
    ]
    vocabulary = clinics + [name for name, _ in CITY_FACILITIES]
    n = patient_district.shape[0]
    city = len(clinics) + rng.choice(len(CITY_FACILITIES), size=n, p=weights([f[1] for f in CITY_FACILITIES]))
    local = rng.random(n) < LOCAL_CLINIC_SHARE
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
    ages = (EPOCH_2025 - birth_days) / 365.25
    propensity = rng.gamma(shape=0.6, scale=1.0, size=ages.shape[0])
    propensity *= np.where(ages < 5, 2.0, 1.0) * np.where(ages > 65, 2.5, 1.0)
    patient = rng.choice(ages.shape[0], size=n, p=propensity / propensity.sum())

    district_names = [name for name, _, _ in (*DISTRICTS, *TINY_DISTRICTS)]
    district_lookup = {name: code for code, name in enumerate(district_names)}
    district_of_person = np.array(
        [district_lookup[name] for name in people.column("district").to_pylist()], dtype=np.int64
    )
    facility_names, facility_codes = _facilities(rng, district_of_person[patient])

    day = _visit_days(rng, n)
    month = (day.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)) % 12 + 1
    flu_season = (month >= 11) | (month <= 3)
    off = rng.choice(len(DIAGNOSES), size=n, p=weights([d[1] for d in DIAGNOSES]))
    peak = rng.choice(len(DIAGNOSES), size=n, p=weights([d[2] for d in DIAGNOSES]))
    diagnosis = np.where(flu_season, peak, off)
    # Childbirth only for women of child-bearing age; anyone else drawn there gets a check-up instead.
    patient_age = ages[patient]
    female = people.column("sex").to_numpy(zero_copy_only=False)[patient] == "F"
    impossible = (diagnosis == CHILDBIRTH) & ~(female & (patient_age >= 16) & (patient_age <= 48))
    diagnosis = np.where(impossible, CHECK_UP, diagnosis)
    base_cost = np.array([d[3] for d in DIAGNOSES])[diagnosis]
    cost = np.round(base_cost * rng.lognormal(mean=0.0, sigma=0.45, size=n), 2)

    return as_frame(
        {
            "visit_id": prefixed_ids("V", np.arange(1, n + 1), 9),
            "person_id": people.column("person_id").combine_chunks().take(pa.array(patient)),
            "visit_date": pa.array((EPOCH_2025 + day).astype("datetime64[D]")),
            "facility": labels(facility_names, facility_codes),
            "diagnosis": labels([d[0] for d in DIAGNOSES], diagnosis),
            "cost": pa.array(cost),
        }
    )
