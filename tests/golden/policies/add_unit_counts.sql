-- case: one table
SELECT district, COUNT(*) FROM citizens GROUP BY district
-- expect:
SELECT "citizens"."district" AS "district", COUNT(*) AS "_col_1", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units" FROM "citizens" AS "citizens" GROUP BY "citizens"."district"
-- case: unit carried up through a CTE
WITH c AS (SELECT district, person_id FROM citizens) SELECT district, COUNT(*) FROM c GROUP BY district
-- expect:
WITH "c" AS (SELECT "citizens"."district" AS "district", "citizens"."person_id" AS "person_id", "citizens"."person_id" AS "_sbx_u0" FROM "citizens" AS "citizens") SELECT "c"."district" AS "district", COUNT(*) AS "_col_1", COUNT(DISTINCT "c"."_sbx_u0") AS "_sbx_units" FROM "c" AS "c" GROUP BY "c"."district"
-- case: FILTER cell gets its own unit count
SELECT district, COUNT(*) FILTER (WHERE sex = 'F') AS women FROM citizens GROUP BY district
-- expect:
SELECT "citizens"."district" AS "district", COUNT(*) FILTER(WHERE "citizens"."sex" = 'F') AS "women", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units" FROM "citizens" AS "citizens" GROUP BY "citizens"."district"
-- case: union of two aggregates
SELECT sex AS k, COUNT(*) AS n FROM citizens GROUP BY sex UNION ALL SELECT district, COUNT(*) FROM citizens GROUP BY district
-- expect:
SELECT "citizens"."sex" AS "k", COUNT(*) AS "n", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units" FROM "citizens" AS "citizens" GROUP BY "citizens"."sex" UNION ALL SELECT "citizens"."district" AS "district", COUNT(*) AS "_col_1", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units" FROM "citizens" AS "citizens" GROUP BY "citizens"."district"
-- case: self join counts both sides
SELECT a.district, COUNT(*) FROM citizens a JOIN citizens b ON a.person_id = b.person_id GROUP BY a.district
-- expect:
SELECT "a"."district" AS "district", COUNT(*) AS "_col_1", COUNT(DISTINCT "a"."person_id") AS "_sbx_units", COUNT(DISTINCT "b"."person_id") AS "_sbx_units_1" FROM "citizens" AS "a" JOIN "citizens" AS "b" ON "a"."person_id" = "b"."person_id" GROUP BY "a"."district"
