-- case: a condition that could raise is wrapped; a plain comparison stays bare
SELECT sex, COUNT(*) AS n FROM citizens WHERE district = 'North' AND CASE WHEN sex = 'F' THEN CAST('x' AS INTEGER) ELSE 1 END = 1 GROUP BY sex
-- expect:
SELECT "citizens"."sex" AS "sex", COUNT(*) AS "n" FROM "citizens" AS "citizens" WHERE "citizens"."district" = 'North' AND TRY(CASE WHEN "citizens"."sex" = 'F' THEN CAST('x' AS INT) ELSE 1 END = 1) GROUP BY "citizens"."sex"
-- case: a GROUP BY key is wrapped once and repeated wrapped in the select list
SELECT year(birth_date) AS y, COUNT(*) AS n FROM citizens GROUP BY year(birth_date)
-- expect:
SELECT TRY(YEAR("citizens"."birth_date")) AS "y", COUNT(*) AS "n" FROM "citizens" AS "citizens" GROUP BY TRY(YEAR("citizens"."birth_date"))
-- case: an expression over a wrapped key wraps the key inside
SELECT year(birth_date) + 1 AS y, COUNT(*) AS n FROM citizens GROUP BY year(birth_date)
-- expect:
SELECT TRY(TRY(YEAR("citizens"."birth_date")) + 1) AS "y", COUNT(*) AS "n" FROM "citizens" AS "citizens" GROUP BY TRY(YEAR("citizens"."birth_date"))
-- case: aggregate arguments are wrapped, bare columns are not
SELECT sex, SUM(income * 2) AS s, COUNT(DISTINCT person_id) AS people FROM citizens GROUP BY sex
-- expect:
SELECT "citizens"."sex" AS "sex", SUM(TRY("citizens"."income" * 2)) AS "s", COUNT(DISTINCT "citizens"."person_id") AS "people" FROM "citizens" AS "citizens" GROUP BY "citizens"."sex"
-- case: FILTER conditions are wrapped
SELECT sex, COUNT(*) FILTER (WHERE length(district) > 3) AS n FROM citizens GROUP BY sex
-- expect:
SELECT "citizens"."sex" AS "sex", COUNT(*) FILTER(WHERE TRY(LENGTH("citizens"."district") > 3)) AS "n" FROM "citizens" AS "citizens" GROUP BY "citizens"."sex"
-- case: post-aggregate arithmetic runs in DOUBLE with non-zero divisors
SELECT sex, COUNT(*) * 9223372036854775807 AS a, SUM(income) % COUNT(*) AS b FROM citizens GROUP BY sex HAVING COUNT(*) - 1 > 0 ORDER BY COUNT(*) // 2
-- expect:
SELECT "citizens"."sex" AS "sex", CAST(COUNT(*) AS DOUBLE) * 9223372036854775807 AS "a", CAST(SUM("citizens"."income") AS DOUBLE) % NULLIF(CAST(COUNT(*) AS DOUBLE), 0) AS "b" FROM "citizens" AS "citizens" GROUP BY "citizens"."sex" HAVING CAST(COUNT(*) AS DOUBLE) - 1 > 0 ORDER BY CAST(COUNT(*) AS DOUBLE) // 2
-- case: a row-level projection in a CTE is wrapped, a semi-join stays bare
WITH a AS (SELECT person_id, upper(district) AS d FROM citizens) SELECT d, COUNT(DISTINCT person_id) AS n FROM a WHERE person_id IN (SELECT person_id FROM citizens WHERE abs(income) > 5) GROUP BY d
-- expect:
WITH "a" AS (SELECT "citizens"."person_id" AS "person_id", TRY(UPPER("citizens"."district")) AS "d" FROM "citizens" AS "citizens") SELECT "a"."d" AS "d", COUNT(DISTINCT "a"."person_id") AS "n" FROM "a" AS "a" WHERE "a"."person_id" IN (SELECT "citizens"."person_id" AS "person_id" FROM "citizens" AS "citizens" WHERE TRY(ABS("citizens"."income") > 5)) GROUP BY "a"."d"
-- case: a join on the unit stays bare (hash joins), other join conditions are wrapped
SELECT c.sex, COUNT(*) AS n FROM citizens c JOIN citizens d ON c.person_id = d.person_id AND d.income + 9223372036854775807 > 0 GROUP BY c.sex
-- expect:
SELECT "c"."sex" AS "sex", COUNT(*) AS "n" FROM "citizens" AS "c" JOIN "citizens" AS "d" ON "c"."person_id" = "d"."person_id" AND TRY("d"."income" + 9223372036854775807 > 0) GROUP BY "c"."sex"
