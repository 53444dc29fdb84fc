-- case: a sum and a mean of one table
SELECT district, SUM(income) AS s, AVG(income) AS m FROM citizens GROUP BY district
-- expect:
SELECT "citizens"."district" AS "district", SUM("citizens"."income") AS "s", AVG("citizens"."income") AS "m", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units", ARRAY_AGG({'u': "citizens"."person_id", 'v': CAST("citizens"."income" AS DOUBLE)}) AS "_sbx_contrib_0" FROM "citizens" AS "citizens" GROUP BY "citizens"."district"
-- case: a count adds nothing
SELECT district, COUNT(*) AS n FROM citizens GROUP BY district
-- expect:
SELECT "citizens"."district" AS "district", COUNT(*) AS "n", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units" FROM "citizens" AS "citizens" GROUP BY "citizens"."district"
-- case: the aggregate's own FILTER
SELECT district, SUM(income) FILTER (WHERE sex = 'F') AS w FROM citizens GROUP BY district
-- expect:
SELECT "citizens"."district" AS "district", SUM("citizens"."income") FILTER(WHERE "citizens"."sex" = 'F') AS "w", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units", ARRAY_AGG({'u': "citizens"."person_id", 'v': CAST("citizens"."income" AS DOUBLE)}) FILTER(WHERE "citizens"."sex" = 'F') AS "_sbx_contrib_0" FROM "citizens" AS "citizens" GROUP BY "citizens"."district"
-- case: an aggregate inside an expression and a CASE branch
SELECT district, CASE WHEN COUNT(*) > 100 THEN SUM(income) / COUNT(*) END AS r FROM citizens GROUP BY district
-- expect:
SELECT "citizens"."district" AS "district", CASE WHEN COUNT(*) > 100 THEN SUM("citizens"."income") / COUNT(*) END AS "r", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units", CASE WHEN COUNT(*) > 100 THEN ARRAY_AGG({'u': "citizens"."person_id", 'v': CAST("citizens"."income" AS DOUBLE)}) ELSE NULL END AS "_sbx_contrib_0" FROM "citizens" AS "citizens" GROUP BY "citizens"."district"
-- case: a window over released rows adds nothing of its own
SELECT district, SUM(income) AS s, SUM(SUM(income)) OVER () AS t FROM citizens GROUP BY district
-- expect:
SELECT "citizens"."district" AS "district", SUM("citizens"."income") AS "s", SUM(SUM("citizens"."income")) OVER () AS "t", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units", ARRAY_AGG({'u': "citizens"."person_id", 'v': CAST("citizens"."income" AS DOUBLE)}) AS "_sbx_contrib_0" FROM "citizens" AS "citizens" GROUP BY "citizens"."district"
-- case: every branch of a union
SELECT SUM(income) AS s FROM citizens WHERE district = 'Central' UNION ALL SELECT COUNT(*) FROM citizens
-- expect:
SELECT SUM("citizens"."income") AS "s", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units", ARRAY_AGG({'u': "citizens"."person_id", 'v': CAST("citizens"."income" AS DOUBLE)}) AS "_sbx_contrib_0" FROM "citizens" AS "citizens" WHERE "citizens"."district" = 'Central' UNION ALL SELECT COUNT(*) AS "_col_0", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units", NULL AS "_sbx_contrib_0" FROM "citizens" AS "citizens"
