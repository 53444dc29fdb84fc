-- case: limit above the cap is lowered
SELECT district, COUNT(*) FROM citizens GROUP BY district LIMIT 50000
-- expect:
SELECT "citizens"."district" AS "district", COUNT(*) AS "_col_1" FROM "citizens" AS "citizens" GROUP BY "citizens"."district" LIMIT 101
-- case: limit below the cap is kept
SELECT district, COUNT(*) FROM citizens GROUP BY district LIMIT 5
-- expect:
SELECT "citizens"."district" AS "district", COUNT(*) AS "_col_1" FROM "citizens" AS "citizens" GROUP BY "citizens"."district" LIMIT 5
-- case: no limit gets the cap
SELECT district, COUNT(*) FROM citizens GROUP BY district
-- expect:
SELECT "citizens"."district" AS "district", COUNT(*) AS "_col_1" FROM "citizens" AS "citizens" GROUP BY "citizens"."district" LIMIT 101
