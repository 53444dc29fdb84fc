-- case: top-level scan
SELECT district, COUNT(*) FROM citizens GROUP BY district
-- expect:
SELECT "citizens"."district" AS "district", COUNT(*) AS "_col_1" FROM (SELECT * FROM "citizens" WHERE district <> 'Military Zone') AS "citizens" GROUP BY "citizens"."district"
-- case: scan inside a CTE
WITH c AS (SELECT district, person_id FROM citizens) SELECT district, COUNT(*) FROM c GROUP BY district
-- expect:
WITH "c" AS (SELECT "citizens"."district" AS "district", "citizens"."person_id" AS "person_id" FROM (SELECT * FROM "citizens" WHERE district <> 'Military Zone') AS "citizens") SELECT "c"."district" AS "district", COUNT(*) AS "_col_1" FROM "c" AS "c" GROUP BY "c"."district"
-- case: scan inside an IN subquery
SELECT district, COUNT(*) FROM citizens WHERE person_id IN (SELECT person_id FROM citizens WHERE sex = 'F') GROUP BY district
-- expect:
SELECT "citizens"."district" AS "district", COUNT(*) AS "_col_1" FROM (SELECT * FROM "citizens" WHERE district <> 'Military Zone') AS "citizens" WHERE "citizens"."person_id" IN (SELECT "citizens"."person_id" AS "person_id" FROM (SELECT * FROM "citizens" WHERE district <> 'Military Zone') AS "citizens" WHERE "citizens"."sex" = 'F') GROUP BY "citizens"."district"
