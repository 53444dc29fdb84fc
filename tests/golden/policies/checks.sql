-- case: denied column
SELECT district, COUNT(name) FROM citizens GROUP BY district
-- expect-error: column_denied
-- case: row-level output
SELECT district FROM citizens
-- expect-error: aggregate_only
-- case: unit compared with a literal
SELECT COUNT(*) FROM citizens WHERE person_id = 42
-- expect-error: join_key_use
-- case: aggregate column in WHERE
SELECT COUNT(*) FROM citizens WHERE income > 100
-- expect-error: aggregate_use
-- case: MAX not listed for income
SELECT MAX(income) FROM citizens
-- expect-error: aggregate_function
-- case: window function
SELECT district, COUNT(*) OVER () FROM citizens GROUP BY district
-- expect-error: window_function
-- case: cast oracle
SELECT COUNT(*) FROM citizens WHERE CAST(diagnosis AS INT) = 1
-- expect-error: cast_on_protected
-- case: implicit cast oracle
SELECT COUNT(*) FROM citizens WHERE diagnosis = 1
-- expect-error: implicit_cast
-- case: system function
SELECT COUNT(*) FROM duckdb_tables()
-- expect-error: system_function
-- case: file path
SELECT COUNT(*) FROM '/etc/passwd'
-- expect-error: file_access
-- case: two statements
SELECT COUNT(*) FROM citizens; SELECT 1
-- expect-error: single_statement
-- case: reserved names
SELECT sbx_keyed_hash(district), COUNT(*) AS _sbx_units FROM citizens GROUP BY 1
-- expect-error: reserved_name
-- case: conditional aggregate
SELECT SUM(CASE WHEN sex = 'F' THEN income WHEN sex = 'M' THEN 0 END) FROM citizens
-- expect-error: conditional_aggregate
-- case: group by the unit
SELECT COUNT(*) FROM citizens GROUP BY person_id
-- expect-error: join_key_use
-- case: every finding is reported
SELECT name, MAX(income) FROM citizens WHERE person_id = 1
-- expect-error: aggregate_function, column_denied, join_key_use
-- case: an uncorrelated EXISTS gates the whole result on one row
SELECT sex, COUNT(*) AS n FROM citizens WHERE EXISTS (SELECT 1 FROM citizens c2 WHERE c2.district = 'Lighthouse Island' AND c2.diagnosis = 'J10') GROUP BY sex
-- expect-error: exists_subquery
-- case: NOT EXISTS too, even correlated
SELECT sex, COUNT(*) AS n FROM citizens c WHERE NOT EXISTS (SELECT 1 FROM citizens c2 WHERE c2.person_id = c.person_id AND c2.diagnosis = 'J10') GROUP BY sex
-- expect-error: exists_subquery
-- case: IN (SELECT …) on a constant is a gate, not a semi-join
SELECT sex, COUNT(*) AS n FROM citizens WHERE 'x' IN (SELECT 'x' FROM citizens c2 WHERE c2.diagnosis = 'J10') GROUP BY sex
-- expect-error: in_subquery
-- case: IN (SELECT …) on a group column is refused
SELECT sex, COUNT(*) AS n FROM citizens WHERE district IN (SELECT c2.district FROM citizens c2 WHERE c2.diagnosis = 'J10') GROUP BY sex
-- expect-error: in_subquery
-- case: a cast over an aggregate could fail for some groups
SELECT sex, CAST(SUM(income) AS INTEGER) AS s FROM citizens GROUP BY sex
-- expect-error: uncontained_error
