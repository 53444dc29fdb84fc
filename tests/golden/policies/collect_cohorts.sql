-- case: one table
SELECT district, COUNT(*) FROM citizens GROUP BY district
-- expect:
SELECT "citizens"."district" AS "district", COUNT(*) AS "_col_1", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units", ARRAY_AGG(DISTINCT "citizens"."person_id") AS "_sbx_cohort" FROM "citizens" AS "citizens" GROUP BY "citizens"."district"
-- case: a FILTER cell alone adds no cohort (neutralise_small_subsets makes its subset's)
SELECT district, COUNT(*) FILTER (WHERE sex = 'F') AS women FROM citizens GROUP BY district
-- expect:
SELECT "citizens"."district" AS "district", COUNT(*) FILTER(WHERE "citizens"."sex" = 'F') AS "women", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units", ARRAY_AGG(DISTINCT "citizens"."person_id") AS "_sbx_cohort" FROM "citizens" AS "citizens" GROUP BY "citizens"."district"
-- case: every branch of a union
SELECT COUNT(*) AS n FROM citizens WHERE district = 'Central' UNION ALL SELECT COUNT(*) FROM citizens WHERE district = 'Central' OR sex = 'F'
-- expect:
SELECT COUNT(*) AS "n", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units", ARRAY_AGG(DISTINCT "citizens"."person_id") AS "_sbx_cohort" FROM "citizens" AS "citizens" WHERE "citizens"."district" = 'Central' UNION ALL SELECT COUNT(*) AS "_col_0", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units", ARRAY_AGG(DISTINCT "citizens"."person_id") AS "_sbx_cohort" FROM "citizens" AS "citizens" WHERE "citizens"."district" = 'Central' OR "citizens"."sex" = 'F'
-- case: unit carried up through a CTE
WITH c AS (SELECT district, person_id FROM citizens) SELECT district, COUNT(*) FROM c GROUP BY district
-- expect:
WITH "c" AS (SELECT "citizens"."district" AS "district", "citizens"."person_id" AS "person_id", "citizens"."person_id" AS "_sbx_u0" FROM "citizens" AS "citizens") SELECT "c"."district" AS "district", COUNT(*) AS "_col_1", COUNT(DISTINCT "c"."_sbx_u0") AS "_sbx_units", ARRAY_AGG(DISTINCT "c"."_sbx_u0") AS "_sbx_cohort" FROM "c" AS "c" GROUP BY "c"."district"
-- case: self join: one cohort per side
SELECT a.district, COUNT(*) FROM citizens a JOIN citizens b ON a.person_id = b.person_id GROUP BY a.district
-- expect:
SELECT "a"."district" AS "district", COUNT(*) AS "_col_1", COUNT(DISTINCT "a"."person_id") AS "_sbx_units", COUNT(DISTINCT "b"."person_id") AS "_sbx_units_1", ARRAY_AGG(DISTINCT "a"."person_id") AS "_sbx_cohort", ARRAY_AGG(DISTINCT "b"."person_id") AS "_sbx_cohort_1" FROM "citizens" AS "a" JOIN "citizens" AS "b" ON "a"."person_id" = "b"."person_id" GROUP BY "a"."district"
