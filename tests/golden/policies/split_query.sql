-- case: count, sum and avg by a group key
SELECT d AS d, COUNT(*) AS n, SUM(x) AS s, AVG(x) AS a FROM t GROUP BY d
-- expect:
-- partial:
SELECT d AS "_sbx_g0", COUNT(*) AS "_sbx_p0", SUM(x) AS "_sbx_p1", COUNT(x) AS "_sbx_p2" FROM t GROUP BY d
-- final:
SELECT "_sbx_g0" AS d, CAST(SUM("_sbx_p0") AS BIGINT) AS n, SUM("_sbx_p1") AS s, CASE WHEN SUM("_sbx_p2") = 0 THEN NULL ELSE CAST(SUM("_sbx_p1") AS DOUBLE) / SUM("_sbx_p2") END AS a FROM "_sbx_partials" GROUP BY "_sbx_g0"
-- case: the hidden unit count is summed across parts
SELECT d AS d, COUNT(DISTINCT t.u) AS _sbx_units FROM t GROUP BY d
-- expect:
-- partial:
SELECT d AS "_sbx_g0", COUNT(DISTINCT t.u) AS "_sbx_p0" FROM t GROUP BY d
-- final:
SELECT "_sbx_g0" AS d, CAST(SUM("_sbx_p0") AS BIGINT) AS _sbx_units FROM "_sbx_partials" GROUP BY "_sbx_g0"
-- case: min and max merge with themselves
SELECT d AS d, MIN(x) AS lo, MAX(x) AS hi FROM t GROUP BY d
-- expect:
-- partial:
SELECT d AS "_sbx_g0", MIN(x) AS "_sbx_p0", MAX(x) AS "_sbx_p1" FROM t GROUP BY d
-- final:
SELECT "_sbx_g0" AS d, MIN("_sbx_p0") AS lo, MAX("_sbx_p1") AS hi FROM "_sbx_partials" GROUP BY "_sbx_g0"
-- case: a filtered aggregate keeps its filter per part
SELECT d AS d, COUNT(*) FILTER(WHERE x > 1) AS n, COUNT(DISTINCT t.u) FILTER(WHERE x > 1) AS _sbx_units_1 FROM t GROUP BY d
-- expect:
-- partial:
SELECT d AS "_sbx_g0", COUNT(*) FILTER(WHERE x > 1) AS "_sbx_p0", COUNT(DISTINCT t.u) FILTER(WHERE x > 1) AS "_sbx_p1" FROM t GROUP BY d
-- final:
SELECT "_sbx_g0" AS d, CAST(SUM("_sbx_p0") AS BIGINT) AS n, CAST(SUM("_sbx_p1") AS BIGINT) AS _sbx_units_1 FROM "_sbx_partials" GROUP BY "_sbx_g0"
-- case: having, order and limit run only in the final step
SELECT d AS d, COUNT(*) AS n FROM t GROUP BY d HAVING COUNT(*) > 2 ORDER BY n DESC, 1 LIMIT 10
-- expect:
-- partial:
SELECT d AS "_sbx_g0", COUNT(*) AS "_sbx_p0" FROM t GROUP BY d
-- final:
SELECT "_sbx_g0" AS d, CAST(SUM("_sbx_p0") AS BIGINT) AS n FROM "_sbx_partials" GROUP BY "_sbx_g0" HAVING CAST(SUM("_sbx_p0") AS BIGINT) > 2 ORDER BY n DESC, 1 LIMIT 10
-- case: an expression over aggregates and a computed group key
SELECT x % 3 AS bucket, SUM(x) / COUNT(*) AS mean FROM t GROUP BY x % 3
-- expect:
-- partial:
SELECT x % 3 AS "_sbx_g0", SUM(x) AS "_sbx_p0", COUNT(*) AS "_sbx_p1" FROM t GROUP BY x % 3
-- final:
SELECT "_sbx_g0" AS bucket, SUM("_sbx_p0") / CAST(SUM("_sbx_p1") AS BIGINT) AS mean FROM "_sbx_partials" GROUP BY "_sbx_g0"
-- case: a global aggregate
SELECT COUNT(*) AS n, COUNT(DISTINCT u) AS _sbx_units FROM t
-- expect:
-- partial:
SELECT COUNT(*) AS "_sbx_p0", COUNT(DISTINCT u) AS "_sbx_p1" FROM t
-- final:
SELECT CAST(SUM("_sbx_p0") AS BIGINT) AS n, CAST(SUM("_sbx_p1") AS BIGINT) AS _sbx_units FROM "_sbx_partials"
-- case: a row filter in a derived table
SELECT t.d AS d, COUNT(*) AS n FROM (SELECT * FROM t WHERE d <> 'x') AS t GROUP BY t.d
-- expect:
-- partial:
SELECT t.d AS "_sbx_g0", COUNT(*) AS "_sbx_p0" FROM (SELECT * FROM t WHERE d <> 'x') AS t GROUP BY t.d
-- final:
SELECT "_sbx_g0" AS d, CAST(SUM("_sbx_p0") AS BIGINT) AS n FROM "_sbx_partials" GROUP BY "_sbx_g0"
-- case: a self-join on the unit is co-partitioned
SELECT a.d AS d, COUNT(*) AS n FROM t AS a JOIN t AS b ON a.u = b.u AND a.x < b.x GROUP BY a.d
-- expect:
-- partial:
SELECT a.d AS "_sbx_g0", COUNT(*) AS "_sbx_p0" FROM t AS a JOIN t AS b ON a.u = b.u AND a.x < b.x GROUP BY a.d
-- final:
SELECT "_sbx_g0" AS d, CAST(SUM("_sbx_p0") AS BIGINT) AS n FROM "_sbx_partials" GROUP BY "_sbx_g0"
-- case: two tables joined on their units
SELECT t.d AS d, SUM(v.y) AS s FROM t JOIN v ON t.u = v.w GROUP BY t.d
-- expect:
-- partial:
SELECT t.d AS "_sbx_g0", SUM(v.y) AS "_sbx_p0" FROM t JOIN v ON t.u = v.w GROUP BY t.d
-- final:
SELECT "_sbx_g0" AS d, SUM("_sbx_p0") AS s FROM "_sbx_partials" GROUP BY "_sbx_g0"
-- case: a join not on the unit does not split
SELECT a.d AS d, COUNT(*) AS n FROM t AS a JOIN t AS b ON a.d = b.d GROUP BY a.d
-- expect:
-- not splittable: a join that is not on the privacy units of both sides does not split
-- case: a distinct count of another column does not split
SELECT d AS d, COUNT(DISTINCT x) AS n FROM t GROUP BY d
-- expect:
-- not splittable: COUNT(DISTINCT …) of a column that is not a privacy unit does not split
-- case: a median does not split
SELECT d AS d, MEDIAN(x) AS m FROM t GROUP BY d
-- expect:
-- not splittable: MEDIAN(…) does not combine exactly across parts
-- case: window functions do not split
SELECT d AS d, SUM(COUNT(*)) OVER () AS total FROM t GROUP BY d
-- expect:
-- not splittable: window functions do not split
-- case: a row-level query does not split
SELECT d AS d FROM t
-- expect:
-- not splittable: a query without aggregation does not split
-- case: a derived table that aggregates does not split
SELECT s.d AS d, COUNT(*) AS n FROM (SELECT d, u FROM t GROUP BY d, u) AS s GROUP BY s.d
-- expect:
-- not splittable: a derived table is not row-level (GROUP)
-- case: a union does not split
SELECT COUNT(*) AS n FROM t UNION ALL SELECT COUNT(*) AS n FROM t
-- expect:
-- not splittable: only a single SELECT splits (no set operations)
-- case: an unknown table does not split
SELECT COUNT(*) AS n FROM other
-- expect:
-- not splittable: table 'other' has no known privacy unit
-- case: rollup does not split
SELECT d AS d, COUNT(*) AS n FROM t GROUP BY ROLLUP (d)
-- expect:
-- not splittable: GROUPING SETS, CUBE and ROLLUP do not split
-- case: grouping sets do not split
SELECT d AS d, COUNT(*) AS n FROM t GROUP BY GROUPING SETS ((d), ())
-- expect:
-- not splittable: GROUPING SETS, CUBE and ROLLUP do not split
-- case: HAVING may name an output column (the k rule names the hidden unit count)
SELECT d AS d, COUNT(*) AS n, COUNT(DISTINCT t.u) AS _sbx_units FROM t GROUP BY d HAVING _sbx_units >= 5 ORDER BY n LIMIT 3
-- expect:
-- partial:
SELECT d AS "_sbx_g0", COUNT(*) AS "_sbx_p0", COUNT(DISTINCT t.u) AS "_sbx_p1" FROM t GROUP BY d
-- final:
SELECT "_sbx_g0" AS d, CAST(SUM("_sbx_p0") AS BIGINT) AS n, CAST(SUM("_sbx_p1") AS BIGINT) AS _sbx_units FROM "_sbx_partials" GROUP BY "_sbx_g0" HAVING _sbx_units >= 5 ORDER BY n LIMIT 3
