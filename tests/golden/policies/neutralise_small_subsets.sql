-- case: a FILTER cell is neutralised for a small subset or a small rest
SELECT district, COUNT(*) FILTER (WHERE sex = 'F') AS women FROM citizens GROUP BY district
-- expect:
SELECT "citizens"."district" AS "district", CASE WHEN COUNT(DISTINCT "citizens"."person_id") FILTER(WHERE "citizens"."sex" = 'F') BETWEEN 0 AND 9 THEN NULL WHEN COUNT(DISTINCT "citizens"."person_id") FILTER(WHERE ("citizens"."sex" = 'F') IS NOT TRUE) BETWEEN 1 AND 9 THEN COUNT(*) FILTER(WHERE TRUE) ELSE COUNT(*) FILTER(WHERE "citizens"."sex" = 'F') END AS "women", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units" FROM "citizens" AS "citizens" GROUP BY "citizens"."district"
-- case: a FILTER cell inside arithmetic
SELECT district, SUM(income) - SUM(income) FILTER (WHERE sex <> 'X') AS d FROM citizens GROUP BY district
-- expect:
SELECT "citizens"."district" AS "district", SUM("citizens"."income") - CASE WHEN COUNT(DISTINCT "citizens"."person_id") FILTER(WHERE "citizens"."sex" <> 'X') BETWEEN 0 AND 9 THEN NULL WHEN COUNT(DISTINCT "citizens"."person_id") FILTER(WHERE ("citizens"."sex" <> 'X') IS NOT TRUE) BETWEEN 1 AND 9 THEN SUM("citizens"."income") FILTER(WHERE TRUE) ELSE SUM("citizens"."income") FILTER(WHERE "citizens"."sex" <> 'X') END AS "d", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units" FROM "citizens" AS "citizens" GROUP BY "citizens"."district"
-- case: a one-branch CASE bucket
SELECT district, AVG(CASE WHEN sex = 'F' THEN 1.0 ELSE 0.0 END) AS rate FROM citizens GROUP BY district
-- expect:
SELECT "citizens"."district" AS "district", CASE WHEN COUNT(DISTINCT "citizens"."person_id") FILTER(WHERE "citizens"."sex" = 'F') BETWEEN 0 AND 9 THEN NULL WHEN COUNT(DISTINCT "citizens"."person_id") FILTER(WHERE ("citizens"."sex" = 'F') IS NOT TRUE) BETWEEN 1 AND 9 THEN AVG(CASE WHEN TRUE THEN 1.0 ELSE 0.0 END) ELSE AVG(CASE WHEN "citizens"."sex" = 'F' THEN 1.0 ELSE 0.0 END) END AS "rate", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units" FROM "citizens" AS "citizens" GROUP BY "citizens"."district"
-- case: a CASE bucket in ORDER BY is neutralised too
SELECT district, COUNT(*) AS n FROM citizens GROUP BY district ORDER BY SUM(CASE WHEN sex = 'X' THEN 1 ELSE 0 END) DESC LIMIT 1
-- expect:
SELECT "citizens"."district" AS "district", COUNT(*) AS "n", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units" FROM "citizens" AS "citizens" GROUP BY "citizens"."district" ORDER BY CASE WHEN COUNT(DISTINCT "citizens"."person_id") FILTER(WHERE "citizens"."sex" = 'X') BETWEEN 0 AND 9 THEN NULL WHEN COUNT(DISTINCT "citizens"."person_id") FILTER(WHERE ("citizens"."sex" = 'X') IS NOT TRUE) BETWEEN 1 AND 9 THEN SUM(CASE WHEN TRUE THEN 1 ELSE 0 END) ELSE SUM(CASE WHEN "citizens"."sex" = 'X' THEN 1 ELSE 0 END) END DESC LIMIT 1
-- case: a self join judges the subset in both unit slots
SELECT a.district, COUNT(*) FILTER (WHERE b.sex = 'F') AS women FROM citizens a JOIN citizens b ON a.person_id = b.person_id GROUP BY a.district
-- expect:
SELECT "a"."district" AS "district", CASE WHEN COUNT(DISTINCT "a"."person_id") FILTER(WHERE "b"."sex" = 'F') BETWEEN 0 AND 9 OR COUNT(DISTINCT "b"."person_id") FILTER(WHERE "b"."sex" = 'F') BETWEEN 0 AND 9 THEN NULL WHEN COUNT(DISTINCT "a"."person_id") FILTER(WHERE ("b"."sex" = 'F') IS NOT TRUE) BETWEEN 1 AND 9 OR COUNT(DISTINCT "b"."person_id") FILTER(WHERE ("b"."sex" = 'F') IS NOT TRUE) BETWEEN 1 AND 9 THEN COUNT(*) FILTER(WHERE TRUE) ELSE COUNT(*) FILTER(WHERE "b"."sex" = 'F') END AS "women", COUNT(DISTINCT "a"."person_id") AS "_sbx_units", COUNT(DISTINCT "b"."person_id") AS "_sbx_units_1" FROM "citizens" AS "a" JOIN "citizens" AS "b" ON "a"."person_id" = "b"."person_id" GROUP BY "a"."district"
-- case: a condition without columns is left alone
SELECT district, COUNT(*) FILTER (WHERE 1 = 1) AS n FROM citizens GROUP BY district
-- expect:
SELECT "citizens"."district" AS "district", COUNT(*) FILTER(WHERE 1 = 1) AS "n", COUNT(DISTINCT "citizens"."person_id") AS "_sbx_units" FROM "citizens" AS "citizens" GROUP BY "citizens"."district"
