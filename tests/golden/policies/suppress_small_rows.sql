-- case: one table gets the threshold as HAVING
SELECT district, COUNT(*) AS n FROM citizens GROUP BY district ORDER BY n LIMIT 1
-- expect:
SELECT "citizens"."district" AS "district", COUNT(*) AS "n", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units" FROM "citizens" AS "citizens" GROUP BY "citizens"."district" HAVING "_sbx_units" >= 10 ORDER BY "n" LIMIT 1
-- case: the user's HAVING is kept, an OR stays grouped
SELECT district, COUNT(*) AS n FROM citizens GROUP BY district HAVING COUNT(*) > 3 OR SUM(income) > 10
-- expect:
SELECT "citizens"."district" AS "district", COUNT(*) AS "n", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units" FROM "citizens" AS "citizens" GROUP BY "citizens"."district" HAVING (COUNT(*) > 3 OR SUM("citizens"."income") > 10) AND "_sbx_units" >= 10
-- case: every branch of a union
SELECT sex AS k, COUNT(*) AS n FROM citizens GROUP BY sex UNION ALL SELECT district, COUNT(*) FROM citizens GROUP BY district ORDER BY n LIMIT 1
-- expect:
SELECT "citizens"."sex" AS "k", COUNT(*) AS "n", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units" FROM "citizens" AS "citizens" GROUP BY "citizens"."sex" HAVING "_sbx_units" >= 10 UNION ALL SELECT "citizens"."district" AS "district", COUNT(*) AS "_col_1", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units" FROM "citizens" AS "citizens" GROUP BY "citizens"."district" HAVING "_sbx_units" >= 10 ORDER BY "n" LIMIT 1
-- case: a self join needs k in both unit slots
SELECT a.district, COUNT(*) FROM citizens a JOIN citizens b ON a.person_id = b.person_id GROUP BY a.district
-- expect:
SELECT "a"."district" AS "district", COUNT(*) AS "_col_1", COUNT(DISTINCT "a"."person_id") AS "_sbx_units", COUNT(DISTINCT "b"."person_id") AS "_sbx_units_1" FROM "citizens" AS "a" JOIN "citizens" AS "b" ON "a"."person_id" = "b"."person_id" GROUP BY "a"."district" HAVING "_sbx_units" >= 10 AND "_sbx_units_1" >= 10
-- case: no GROUP BY: the one row is kept only with k units
SELECT COUNT(*) AS n FROM citizens WHERE district = 'Tiny'
-- expect:
SELECT COUNT(*) AS "n", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units" FROM "citizens" AS "citizens" WHERE "citizens"."district" = 'Tiny' HAVING "_sbx_units" >= 10
