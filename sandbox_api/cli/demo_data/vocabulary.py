"""Built-in vocabularies and reference values of the demo data: names, districts, diagnoses,
facilities, dates and the national-ID check table."""

from __future__ import annotations

from typing import Final

import numpy as np

# Day numbers (days since 1970-01-01) of the reference dates used below.
EPOCH_2025: Final = int(np.datetime64("2025-01-01", "D").astype(np.int64))
VISIT_DAYS: Final = 730  # 2025-01-01 .. 2026-12-31

# ---------------------------------------------------------------------------------------------------
# Built-in vocabularies. Frequencies are rough shares from published name and population statistics;
# only their shape (a few very common values, a long tail) matters for the demo.
# ---------------------------------------------------------------------------------------------------

SURNAMES: Final[tuple[tuple[str, float], ...]] = (
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
GIVEN_FEMALE: Final[tuple[str, ...]] = (
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
GIVEN_MALE: Final[tuple[str, ...]] = (
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
DISTRICTS: Final[tuple[tuple[str, str, float], ...]] = (
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
TINY_DISTRICTS: Final[tuple[tuple[str, str, int], ...]] = (
    ("Lighthouse Island", "110117", 6),
    ("Saltmarsh", "110118", 14),
)

# Diagnosis label (ICD-10 code and name), share among visits outside / inside the flu season, base cost.
DIAGNOSES: Final[tuple[tuple[str, float, float, float], ...]] = (
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
CHECK_UP: Final = next(i for i, d in enumerate(DIAGNOSES) if d[0].startswith("Z00"))
CHILDBIRTH: Final = next(i for i, d in enumerate(DIAGNOSES) if d[0].startswith("O80"))
CITY_FACILITIES: Final[tuple[tuple[str, float], ...]] = (
    ("City General Hospital", 0.45),
    ("Children's Hospital", 0.15),
    ("University Hospital", 0.25),
    ("Traditional Medicine Hospital", 0.15),
)
MILITARY_HOSPITAL: Final = "Military Hospital"
LOCAL_CLINIC_SHARE: Final = 0.6  # share of visits to the clinic of the patient's own district

MAX_INCOME: Final = 50_000_000.0
CHECK_CHARS: Final = np.frombuffer(b"10X98765432", dtype=np.uint8)
ID_WEIGHTS: Final = np.array([pow(2, 17 - i, 11) for i in range(17)], dtype=np.int64)
