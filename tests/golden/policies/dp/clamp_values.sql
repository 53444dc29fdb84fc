-- case: a sum is clamped to the column bounds
SELECT ward, SUM(cost) AS s FROM visits GROUP BY ward
-- expect:
SELECT "visits"."ward" AS "ward", SUM(CASE WHEN "visits"."cost" < 0 THEN 0 WHEN "visits"."cost" > 500 THEN 500 ELSE "visits"."cost" END) AS "s" FROM "visits" AS "visits" GROUP BY "visits"."ward"
-- case: a mean is clamped
SELECT ward, AVG(cost) AS a FROM visits GROUP BY ward
-- expect:
SELECT "visits"."ward" AS "ward", AVG(CASE WHEN "visits"."cost" < 0 THEN 0 WHEN "visits"."cost" > 500 THEN 500 ELSE "visits"."cost" END) AS "a" FROM "visits" AS "visits" GROUP BY "visits"."ward"
-- case: a value computed in a CTE is clamped to its column bounds
WITH t AS (SELECT person_id, ward, cost * 2 AS y FROM visits) SELECT ward, SUM(y) AS s FROM t GROUP BY ward
-- expect:
WITH "t" AS (SELECT "visits"."person_id" AS "person_id", "visits"."ward" AS "ward", "visits"."cost" * 2 AS "y" FROM "visits" AS "visits") SELECT "t"."ward" AS "ward", SUM(CASE WHEN "t"."y" < 0 THEN 0 WHEN "t"."y" > 500 THEN 500 ELSE "t"."y" END) AS "s" FROM "t" AS "t" GROUP BY "t"."ward"
-- case: counts are not clamped
SELECT ward, COUNT(cost) AS n FROM visits GROUP BY ward
-- expect:
SELECT "visits"."ward" AS "ward", COUNT("visits"."cost") AS "n" FROM "visits" AS "visits" GROUP BY "visits"."ward"
