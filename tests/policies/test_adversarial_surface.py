"""Attacks on the surface of the analysis: statements other than one read query, files and table
functions, system catalogs, identifier and unicode tricks, positional and whole-row references, star
expansion, the engine's reserved names, lambdas, and attempts to get around masks and the row filter.

Judged like ``test_adversarial.py``: refuse with a finding of the named kind, or (``safe``) release
nothing protected and nothing below k.
"""

from __future__ import annotations

import pytest

from tests.policies.adversarial_fixture import (
    HIDDEN_DISTRICT,
    Attack,
    assert_attack,
    at_most_one_value,
    build_fixture,
    citizens_seen,
    never_value,
    reject,
    released_nothing,
    safe,
    units_oracle,
)

FX = build_fixture()
PID = FX.citizens.iloc[0]["person_id"]
RAW_PHONE = FX.citizens.iloc[0]["phone"]
RAW_HOUSEHOLD = FX.citizens.iloc[0]["household_id"]
BY_DISTRICT = units_oracle(citizens_seen, ["district"])
COUNT_BY_DISTRICT = "SELECT district, COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY district"

STATEMENTS: list[Attack] = [
    reject("multi_two_selects", "SELECT 1; SELECT name FROM citizens", "statement"),
    reject("multi_then_drop", f"{COUNT_BY_DISTRICT}; DROP TABLE citizens", "statement"),
    reject(
        "multi_hidden_after_comment",
        "SELECT COUNT(*) FROM citizens; -- harmless\nSELECT national_id FROM citizens",
        "statement",
    ),
    reject(
        "multi_set_then_select",
        "SET enable_external_access = true; SELECT COUNT(*) FROM citizens",
        "statement",
    ),
    reject("empty_query", "", "statement", "syntax"),
    reject("only_a_comment", "-- nothing here", "statement", "syntax"),
    reject("stmt_pragma_database_list", "PRAGMA database_list", "statement"),
    reject("stmt_pragma_table_info", "PRAGMA table_info('citizens')", "statement"),
    reject("stmt_set", "SET enable_external_access = true", "statement"),
    reject("stmt_reset", "RESET memory_limit", "statement"),
    reject("stmt_attach", "ATTACH ':memory:' AS other", "statement"),
    reject("stmt_detach", "DETACH other", "statement"),
    reject("stmt_copy_table_to_file", "COPY citizens TO 'out.csv'", "statement"),
    reject(
        "stmt_copy_query_to_file",
        "COPY (SELECT * FROM citizens) TO 'out.parquet' (FORMAT parquet)",
        "statement",
    ),
    reject("stmt_copy_from_file", "COPY citizens FROM 'in.csv'", "statement"),
    reject("stmt_install", "INSTALL httpfs", "statement"),
    reject("stmt_load", "LOAD httpfs", "statement"),
    reject("stmt_call", "CALL pragma_table_info('citizens')", "statement"),
    reject("stmt_export", "EXPORT DATABASE 'dump'", "statement"),
    reject("stmt_create_table_as", "CREATE TABLE stolen AS SELECT * FROM citizens", "statement"),
    reject("stmt_create_view", "CREATE VIEW v AS SELECT name FROM citizens", "statement"),
    reject("stmt_create_macro", "CREATE MACRO leak(x) AS x", "statement"),
    reject("stmt_insert", "INSERT INTO citizens (person_id) VALUES ('P0000000')", "statement"),
    reject("stmt_update", "UPDATE citizens SET income = 0", "statement"),
    reject("stmt_delete", "DELETE FROM citizens WHERE district <> 'Lonely Isle'", "statement"),
    reject("stmt_drop", "DROP TABLE citizens", "statement"),
    reject("stmt_describe", "DESCRIBE citizens", "statement"),
    reject("stmt_summarize", "SUMMARIZE citizens", "statement"),
    reject("stmt_show_tables", "SHOW TABLES", "statement"),
    reject("stmt_explain", "EXPLAIN SELECT name FROM citizens", "statement"),
    reject("stmt_explain_analyze", f"EXPLAIN ANALYZE {COUNT_BY_DISTRICT}", "statement"),
    reject("stmt_checkpoint", "CHECKPOINT", "statement"),
    reject("stmt_begin", "BEGIN TRANSACTION", "statement"),
    reject("stmt_use", "USE memory", "statement"),
    reject("stmt_create_secret", "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')", "statement"),
    reject("stmt_set_variable", "SET VARIABLE v = (SELECT name FROM citizens LIMIT 1)", "statement"),
]

FILES: list[Attack] = [
    reject("tf_read_csv", "SELECT COUNT(*) FROM read_csv('/etc/passwd')", "table_function"),
    reject("tf_read_csv_auto", "SELECT * FROM read_csv_auto('data.csv')", "table_function"),
    reject("tf_read_parquet", "SELECT * FROM read_parquet('part-0.parquet')", "table_function"),
    reject("tf_parquet_scan", "SELECT COUNT(*) FROM parquet_scan('*.parquet')", "table_function"),
    reject("tf_read_json", "SELECT * FROM read_json('x.json')", "table_function"),
    reject("tf_read_text", "SELECT * FROM read_text('/etc/hostname')", "table_function"),
    reject("tf_read_blob", "SELECT * FROM read_blob('/etc/hostname')", "table_function"),
    reject("tf_glob", "SELECT * FROM glob('*')", "table_function"),
    reject("tf_sniff_csv", "SELECT * FROM sniff_csv('/etc/passwd')", "table_function"),
    reject("tf_file_literal_csv", "SELECT COUNT(*) FROM 'data.csv'", "table_function", "unknown_table"),
    reject("tf_file_literal_passwd", "SELECT * FROM '/etc/passwd'", "table_function", "unknown_table"),
    reject("tf_url_literal", "SELECT * FROM 'https://example.org/x.csv'", "table_function", "unknown_table"),
    reject(
        "tf_file_in_join",
        "SELECT c.district, COUNT(*) FROM citizens c JOIN read_csv('ids.csv') f ON f.id = c.person_id "
        "GROUP BY 1",
        "table_function",
    ),
    reject("tf_sqlite_scan", "SELECT * FROM sqlite_scan('x.db', 't')", "table_function", "system"),
    reject("tf_range_alone", "SELECT COUNT(*) FROM range(10)", "table_function"),
]

SYSTEM: list[Attack] = [
    reject("sys_duckdb_tables", "SELECT * FROM duckdb_tables()", "system", "table_function"),
    reject("sys_duckdb_columns", "SELECT * FROM duckdb_columns()", "system", "table_function"),
    reject("sys_duckdb_settings", "SELECT * FROM duckdb_settings()", "system", "table_function"),
    reject("sys_duckdb_functions", "SELECT COUNT(*) FROM duckdb_functions()", "system", "table_function"),
    reject("sys_duckdb_secrets", "SELECT * FROM duckdb_secrets()", "system", "table_function"),
    reject("sys_duckdb_extensions", "SELECT * FROM duckdb_extensions()", "system", "table_function"),
    reject("sys_information_schema_tables", "SELECT * FROM information_schema.tables", "system"),
    reject("sys_information_schema_columns", "SELECT column_name FROM information_schema.columns", "system"),
    reject("sys_pg_catalog", "SELECT * FROM pg_catalog.pg_class", "system"),
    reject("sys_sqlite_master", "SELECT * FROM sqlite_master", "system", "unknown_table"),
    reject("sys_pragma_version", "SELECT * FROM pragma_version()", "system", "table_function"),
    reject(
        "sys_current_setting", "SELECT current_setting('enable_external_access')", "system", "aggregate_fn"
    ),
    reject("sys_query", "SELECT * FROM query('SELECT name FROM citizens')", "system", "table_function"),
    reject(
        "sys_query_in_subquery",
        "SELECT COUNT(*) FROM citizens WHERE district IN (SELECT * FROM query('SELECT name FROM citizens'))",
        "system",
        "table_function",
    ),
    reject("sys_query_table", "SELECT * FROM query_table('citizens')", "system", "table_function"),
    reject(
        "sys_query_table_list",
        "SELECT COUNT(*) FROM query_table(['citizens', 'visits'])",
        "system",
        "table_function",
    ),
    reject("sys_getvariable", "SELECT getvariable('v')", "system", "aggregate_fn"),
]

IDENTIFIERS: list[Attack] = [
    reject("ident_quoted_upper", 'SELECT "NATIONAL_ID", COUNT(*) FROM citizens GROUP BY 1', "deny"),
    reject("ident_mixed_case", "SELECT NaTiOnAl_Id, COUNT(*) FROM CiTiZeNs GROUP BY 1", "deny"),
    reject(
        "ident_mixed_case_keywords",
        "SeLeCt DiStRiCt, MiN(InCoMe) FrOm CiTiZeNs GrOuP bY DiStRiCt",
        "aggregate_fn",
    ),
    reject("ident_qualified_quoted", 'SELECT "citizens"."national_id" FROM "citizens"', "deny"),
    reject("ident_alias_case", 'SELECT "C".name FROM citizens AS c', "deny"),
    reject(
        "ident_alias_disguise", "SELECT national_id AS district, COUNT(*) FROM citizens GROUP BY 1", "deny"
    ),
    reject(
        "ident_comments_around_column", "SELECT /* harmless */ national_id -- tail\nFROM citizens", "deny"
    ),
    reject("ident_homoglyph_column", 'SELECT "n\u0430tional_id" FROM citizens', "unknown_column"),
    reject("ident_zero_width_column", 'SELECT "national\u200b_id" FROM citizens', "unknown_column"),
    reject(
        "ident_fullwidth_table",
        "SELECT COUNT(*) FROM \uff43\uff49\uff54\uff49\uff5a\uff45\uff4e\uff53",
        "unknown_table",
        "syntax",
    ),
    reject("ident_homoglyph_table", 'SELECT COUNT(*) FROM "citizen\u0455"', "unknown_table"),
    reject("ident_schema_qualified_name", "SELECT name FROM main.citizens", "deny", "unknown_table"),
    reject(
        "ident_catalog_qualified_name",
        "SELECT COUNT(*) FROM memory.main.citizens WHERE name LIKE 'Z%'",
        "deny",
        "unknown_table",
    ),
    reject("ident_unknown_table", "SELECT COUNT(*) FROM secret_table", "unknown_table"),
    reject("ident_rowid", f"{COUNT_BY_DISTRICT}, rowid", "unknown_column", "whole_row"),
    reject(
        "ident_dollar_quoted_literal",
        "SELECT district, COUNT(DISTINCT person_id) FROM citizens WHERE name = $$Zebulon Quarrington$$ "
        "GROUP BY district",
        "deny",
    ),
    reject(
        "ident_unicode_name_literal",
        "SELECT COUNT(DISTINCT person_id) FROM citizens WHERE name = 'Zebul\u00f6n'",
        "deny",
    ),
    safe(
        "ident_statement_inside_comment",
        f"{COUNT_BY_DISTRICT} /* ; SELECT name FROM citizens */",
        keys=("district",),
        oracle=BY_DISTRICT,
    ),
    safe(
        "ident_table_alias_named_like_column",
        "SELECT district, COUNT(DISTINCT person_id) AS n FROM citizens AS district GROUP BY district",
        keys=("district",),
        oracle=BY_DISTRICT,
    ),
    safe(
        "ident_quoted_upper_table",
        'SELECT "DISTRICT", COUNT(DISTINCT "PERSON_ID") AS n FROM "CITIZENS" GROUP BY "DISTRICT"',
        keys=("district",),
        oracle=BY_DISTRICT,
    ),
]

POSITIONAL_AND_ROWS: list[Attack] = [
    reject("pos_select", "SELECT #2 FROM citizens", "positional"),
    reject("pos_group_by", "SELECT COUNT(*) FROM citizens GROUP BY #3", "positional"),
    reject(
        "pos_in_aggregate",
        "SELECT district, COUNT(DISTINCT #2) FROM citizens GROUP BY district",
        "positional",
    ),
    reject(
        "pos_in_where", "SELECT COUNT(DISTINCT person_id) FROM citizens WHERE #3 LIKE 'Zeb%'", "positional"
    ),
    reject("row_select_table", "SELECT citizens FROM citizens", "whole_row"),
    reject("row_select_alias", "SELECT c FROM citizens c", "whole_row"),
    reject("row_to_json", "SELECT to_json(c) FROM citizens c", "whole_row", "aggregate_fn"),
    reject(
        "row_count_distinct",
        "SELECT district, COUNT(DISTINCT c) FROM citizens c GROUP BY district",
        "whole_row",
    ),
    reject("row_min_struct", "SELECT district, MIN(c) FROM citizens c GROUP BY district", "whole_row"),
    reject("row_list_struct", "SELECT district, LIST(c) FROM citizens c GROUP BY district", "whole_row"),
    reject(
        "row_struct_pack_access",
        "SELECT s.n FROM (SELECT struct_pack(n := national_id) AS s FROM citizens) t",
        "deny",
        "whole_row",
    ),
    reject(
        "row_struct_literal_access",
        "SELECT s.n FROM (SELECT {'n': name} AS s FROM citizens) t",
        "deny",
        "whole_row",
    ),
    reject(
        "row_struct_field_group",
        "SELECT COUNT(*) FROM (SELECT c AS r FROM citizens c) t GROUP BY r.district",
        "whole_row",
    ),
    reject(
        "row_md5_of_row",
        "SELECT district, COUNT(DISTINCT md5(c::VARCHAR)) FROM citizens c GROUP BY 1",
        "whole_row",
    ),
    reject("star_select", "SELECT * FROM citizens", "star", "deny"),
    reject("star_upper_table", "SELECT * FROM CITIZENS", "star", "deny"),
    reject("star_visits", "SELECT * FROM visits", "star", "deny"),
    reject("star_alias", "SELECT c.* FROM citizens c", "star", "deny"),
    reject("star_exclude", "SELECT * EXCLUDE (name) FROM citizens", "star", "deny"),
    reject("star_replace", "SELECT * REPLACE (0 AS income) FROM citizens", "star", "deny"),
    reject("star_columns", "SELECT COLUMNS(*) FROM citizens", "star", "deny", "aggregate_fn"),
    reject("star_columns_regex", "SELECT COLUMNS('nat.*') FROM citizens", "star", "deny", "aggregate_fn"),
    reject("star_max_columns", "SELECT MAX(COLUMNS(*)) FROM citizens", "star", "deny", "aggregate_fn"),
    reject("star_with_aggregate", "SELECT COUNT(*), * FROM citizens", "star", "deny"),
    safe(
        "star_over_aggregate_subquery",
        f"SELECT * FROM ({COUNT_BY_DISTRICT}) t",
        keys=("district",),
        oracle=BY_DISTRICT,
    ),
    reject(
        "pivot_on_national_id",
        "PIVOT citizens ON national_id USING SUM(income) GROUP BY district",
        "deny",
        "statement",
    ),
    reject(
        "pivot_select_on_sex",
        "SELECT * FROM (PIVOT citizens ON sex USING COUNT(DISTINCT person_id) GROUP BY district) p",
        "pivot",
        "star",
    ),
    reject("unpivot_names", "UNPIVOT citizens ON name, national_id INTO NAME k VALUE v", "deny", "statement"),
]

RESERVED: list[Attack] = [
    reject(
        "sbx_hash_national_id",
        "SELECT sbx_keyed_hash(national_id) AS t, COUNT(*) FROM citizens GROUP BY 1",
        "reserved",
    ),
    reject(
        "sbx_hash_chosen_literal",
        f"SELECT sbx_keyed_hash('{RAW_HOUSEHOLD}') AS t, COUNT(DISTINCT person_id) AS n FROM citizens",
        "reserved",
    ),
    reject(
        "sbx_hash_upper_case",
        "SELECT SBX_KEYED_HASH(district) AS t, COUNT(*) FROM citizens GROUP BY 1",
        "reserved",
    ),
    reject(
        "sbx_alias_units",
        "SELECT district, COUNT(DISTINCT person_id) AS _sbx_units FROM citizens GROUP BY 1",
        "reserved",
    ),
    reject(
        "sbx_alias_units_quoted_upper",
        'SELECT district, COUNT(DISTINCT person_id) AS "_SBX_UNITS" FROM citizens GROUP BY 1',
        "reserved",
    ),
    reject(
        "sbx_alias_filter_units",
        "SELECT district, SUM(income) AS _sbx_units_1 FROM citizens GROUP BY district",
        "reserved",
    ),
    reject(
        "sbx_cte_name",
        "WITH _sbx_0 AS (SELECT district, person_id FROM citizens) "
        "SELECT district, COUNT(DISTINCT person_id) FROM _sbx_0 GROUP BY district",
        "reserved",
    ),
    reject("sbx_column_reference", "SELECT _sbx_units FROM citizens", "reserved", "unknown_column"),
    reject("sbx_other_function", "SELECT sbx_units(district), COUNT(*) FROM citizens GROUP BY 1", "reserved"),
]

LAMBDAS: list[Attack] = [
    reject(
        "lambda_transform_national_id",
        "SELECT district, list_transform(list(national_id), x -> upper(x)) FROM citizens GROUP BY 1",
        "deny",
    ),
    reject(
        "lambda_filter_income",
        "SELECT district, len(list_filter(list(income), x -> x > 1000000)) FROM citizens GROUP BY 1",
        "lambda",
        "aggregate_fn",
    ),
    reject(
        "lambda_reduce_income",
        "SELECT district, list_reduce(list(income), (a, b) -> greatest(a, b)) FROM citizens GROUP BY 1",
        "lambda",
        "aggregate_fn",
    ),
    reject(
        "lambda_list_contains_unit",
        "SELECT district, SUM(income) FROM citizens GROUP BY 1 HAVING list_contains(list(person_id), "
        f"'{PID}')",
        "join_key",
        "lambda",
        "aggregate_fn",
    ),
    reject(
        "lambda_inside_allowed_sum",
        "SELECT district, SUM(list_sum(list_transform([income], x -> x * 2))) FROM citizens GROUP BY 1",
        "lambda",
        "whole_row",
    ),
    reject(
        "list_aggregate_max_inside_sum",
        "SELECT district, SUM(list_aggregate([income], 'max')) FROM citizens GROUP BY 1",
        "lambda",
        "whole_row",
    ),
    reject(
        "lambda_filter_name_in_where",
        "SELECT COUNT(*) FROM citizens WHERE len(list_filter([name], x -> x LIKE 'Z%')) > 0",
        "deny",
    ),
]

MASKS: list[Attack] = [
    safe(
        "mask_cte_alias_substr",
        "WITH m AS (SELECT phone AS p, person_id FROM citizens) "
        "SELECT SUBSTR(p, 6, 2) AS d, COUNT(DISTINCT person_id) AS n FROM m GROUP BY d",
        extra=at_most_one_value("d"),
    ),
    safe(
        "mask_subquery_month_of_birth",
        "SELECT mo, COUNT(DISTINCT person_id) AS n FROM (SELECT month(birth_date) AS mo, person_id FROM "
        "citizens) t "
        "GROUP BY mo",
        extra=at_most_one_value("mo"),
    ),
    safe(
        "mask_self_join_filter_on_raw_digit",
        "SELECT a.district, COUNT(DISTINCT a.person_id) AS n FROM citizens a JOIN citizens b "
        "ON a.person_id = b.person_id WHERE SUBSTR(b.phone, 6, 1) = '5' GROUP BY a.district",
        extra=released_nothing,
    ),
    safe(
        "mask_where_substr_phone",
        "SELECT district, COUNT(DISTINCT person_id) AS n FROM citizens WHERE SUBSTR(phone, 6, 1) = '5' "
        "GROUP BY district",
        extra=released_nothing,
    ),
    safe(
        "mask_where_household_prefix",
        "SELECT district, COUNT(DISTINCT person_id) AS n FROM citizens WHERE household_id LIKE 'H%' "
        "GROUP BY district",
        extra=released_nothing,
    ),
    safe(
        "mask_where_month_of_birth",
        "SELECT district, COUNT(DISTINCT person_id) AS n FROM citizens WHERE month(birth_date) >= 7 "
        "GROUP BY district",
        extra=released_nothing,
    ),
    safe(
        "mask_where_day_of_birth",
        "SELECT district, COUNT(DISTINCT person_id) AS n FROM citizens WHERE day(birth_date) > 1 GROUP BY "
        "district",
        extra=released_nothing,
    ),
    safe(
        "mask_where_not_start_of_year",
        "SELECT district, COUNT(DISTINCT person_id) AS n FROM citizens "
        "WHERE birth_date <> DATE_TRUNC('year', birth_date) GROUP BY district",
        extra=released_nothing,
    ),
    safe(
        "mask_where_raw_phone_equals",
        f"SELECT COUNT(DISTINCT person_id) AS n FROM citizens WHERE phone = '{RAW_PHONE}'",
        oracle=lambda fx: {(): 0},
    ),
    safe(
        "mask_where_raw_household_equals",
        f"SELECT COUNT(DISTINCT person_id) AS n FROM citizens WHERE household_id = '{RAW_HOUSEHOLD}'",
        oracle=lambda fx: {(): 0},
    ),
    safe(
        "mask_where_day_of_visit",
        "SELECT facility, COUNT(DISTINCT person_id) AS n FROM visits WHERE day(visit_date) > 15 GROUP BY "
        "facility",
        extra=released_nothing,
    ),
    safe(
        "mask_join_on_masked_phone",
        "SELECT a.district, COUNT(*) AS n FROM citizens a JOIN citizens b ON a.phone = b.phone GROUP BY "
        "a.district",
        keys=("district",),
        oracle=BY_DISTRICT,
    ),
    safe(
        "mask_join_like_raw_pattern",
        "SELECT COUNT(DISTINCT c.person_id) AS n FROM citizens c JOIN (SELECT '+4930%' AS p) t ON c.phone "
        "LIKE t.p",
        oracle=lambda fx: {(): 0},
    ),
    safe(
        "mask_using_join_on_phone",
        "SELECT phone, COUNT(*) AS n FROM citizens JOIN citizens c2 USING (phone) GROUP BY phone",
        keys=("phone",),
        oracle=units_oracle(citizens_seen, ["phone"]),
    ),
    safe(
        "mask_visit_date_through_cte",
        "WITH v AS (SELECT visit_date AS d, person_id FROM visits) "
        "SELECT day(d) AS dd, COUNT(DISTINCT person_id) AS n FROM v GROUP BY dd",
        extra=at_most_one_value("dd"),
    ),
    safe(
        "mask_postcode_through_union",
        "SELECT SUBSTR(p, 4, 2) AS s, COUNT(DISTINCT person_id) AS n FROM (SELECT postcode AS p, person_id "
        "FROM citizens UNION ALL SELECT postcode, person_id FROM citizens) t GROUP BY s",
        extra=at_most_one_value("s"),
    ),
    safe(
        "mask_correlated_exists",
        "SELECT district, COUNT(DISTINCT person_id) AS n FROM citizens c WHERE EXISTS (SELECT 1 FROM "
        "citizens d "
        "WHERE d.person_id = c.person_id AND SUBSTR(d.phone, 6, 1) = '5') GROUP BY district",
        extra=released_nothing,
    ),
    safe(
        "mask_in_subquery_on_phone",
        "SELECT district, COUNT(DISTINCT person_id) AS n FROM citizens WHERE phone IN "
        "(SELECT phone FROM citizens WHERE SUBSTR(phone, 1, 5) = '+4930') GROUP BY district",
        extra=released_nothing,
    ),
]

ROW_FILTER: list[Attack] = [
    safe(
        "rf_where_hidden_district",
        f"SELECT district, COUNT(DISTINCT person_id) AS n FROM citizens WHERE district = '{HIDDEN_DISTRICT}' "
        "GROUP BY district",
        extra=released_nothing,
    ),
    safe(
        "rf_or_precedence",
        f"SELECT district, COUNT(DISTINCT person_id) AS n FROM citizens WHERE district = '{HIDDEN_DISTRICT}' "
        "OR sex = 'F' GROUP BY district",
        keys=("district",),
        oracle=units_oracle(citizens_seen, ["district"], where=lambda d: d["sex"] == "F"),
    ),
    safe(
        "rf_inside_cte",
        "WITH x AS (SELECT district, person_id FROM citizens) "
        "SELECT district, COUNT(DISTINCT person_id) AS n FROM x GROUP BY district",
        keys=("district",),
        oracle=BY_DISTRICT,
    ),
    safe(
        "rf_star_inside_cte",
        "WITH x AS (SELECT * FROM citizens) SELECT district, COUNT(DISTINCT person_id) AS n FROM x GROUP BY "
        "1",
        keys=("district",),
        oracle=BY_DISTRICT,
    ),
    safe(
        "rf_join_from_visits",
        "SELECT v.facility, COUNT(DISTINCT v.person_id) AS n FROM visits v JOIN citizens c "
        f"ON c.person_id = v.person_id WHERE c.district = '{HIDDEN_DISTRICT}' GROUP BY v.facility",
        extra=released_nothing,
    ),
    safe(
        "rf_in_subquery",
        "SELECT COUNT(DISTINCT person_id) AS n FROM visits WHERE person_id IN "
        f"(SELECT person_id FROM citizens WHERE district = '{HIDDEN_DISTRICT}')",
        oracle=lambda fx: {(): 0},
    ),
    safe(
        "rf_negated_filter",
        "SELECT district, COUNT(DISTINCT person_id) AS n FROM citizens "
        f"WHERE NOT (district <> '{HIDDEN_DISTRICT}') GROUP BY district",
        extra=released_nothing,
    ),
    safe(
        "rf_case_label",
        f"SELECT CASE WHEN district = '{HIDDEN_DISTRICT}' THEN 'm' ELSE 'o' END AS g, "
        "COUNT(DISTINCT person_id) AS n FROM citizens GROUP BY g",
        extra=never_value("g", "m"),
    ),
    safe(
        "rf_union_of_hidden",
        "SELECT district, COUNT(DISTINCT person_id) AS n FROM (SELECT district, person_id FROM citizens "
        "WHERE "
        f"district = '{HIDDEN_DISTRICT}' UNION ALL SELECT district, person_id FROM citizens WHERE "
        f"district = '{HIDDEN_DISTRICT}') t GROUP BY district",
        extra=released_nothing,
    ),
    safe(
        "rf_quoted_upper_table",
        'SELECT district, COUNT(DISTINCT person_id) AS n FROM "CITIZENS" '
        f"WHERE district = '{HIDDEN_DISTRICT}' GROUP BY district",
        extra=released_nothing,
    ),
    safe(
        "rf_schema_qualified_table",
        "SELECT district, COUNT(DISTINCT person_id) AS n FROM main.citizens WHERE district = "
        f"'{HIDDEN_DISTRICT}' "
        "GROUP BY district",
        extra=released_nothing,
    ),
    safe(
        "rf_left_join_keeps_hidden",
        "SELECT c.district, COUNT(DISTINCT v.person_id) AS n FROM visits v LEFT JOIN citizens c "
        "ON c.person_id = v.person_id GROUP BY c.district",
        keys=("district",),
        oracle=lambda fx: _left_join_units(fx),
    ),
]


def _left_join_units(fx: object) -> dict[tuple[object, ...], int]:
    """Visits left-joined to the visible citizens: hidden people fall into the NULL-district group."""
    fx = build_fixture()
    merged = fx.visits.merge(fx.visible_citizens[["person_id", "district"]], on="person_id", how="left")
    out = {
        (d,): int(n)
        for d, n in merged.dropna(subset=["district"]).groupby("district")["person_id"].nunique().items()
    }
    out[(None,)] = int(merged[merged["district"].isna()]["person_id"].nunique())
    return out


ALL: list[Attack] = (
    STATEMENTS + FILES + SYSTEM + IDENTIFIERS + POSITIONAL_AND_ROWS + RESERVED + LAMBDAS + MASKS + ROW_FILTER
)


def test_case_ids_are_unique() -> None:
    ids = [a.id for a in ALL]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("attack", ALL, ids=lambda a: a.id)
def test_attack(attack: Attack) -> None:
    assert_attack(attack)
