-- case: a single-table GROUP BY keeps one group per unit
SELECT ward, COUNT(*) AS n FROM visits GROUP BY ward
-- expect:
SELECT "visits"."ward" AS "ward", COUNT(*) AS "n" FROM (SELECT * FROM "visits" AS "visits" QUALIFY DENSE_RANK() OVER (PARTITION BY "visits"."person_id" ORDER BY HASH($sbx_dp_key, "visits"."ward"), "visits"."ward") <= 1 AND ROW_NUMBER() OVER (PARTITION BY "visits"."person_id" ORDER BY HASH($sbx_dp_key, "visits"."ward"), "visits"."ward", HASH($sbx_dp_key, "visits"."ward")) <= 3) AS "visits" GROUP BY "visits"."ward"
-- case: a single-table GROUP BY of citizens keeps one of its two rows per unit by group
SELECT district, COUNT(*) AS n FROM citizens GROUP BY district
-- expect:
SELECT "citizens"."district" AS "district", COUNT(*) AS "n" FROM (SELECT * FROM "citizens" AS "citizens" QUALIFY DENSE_RANK() OVER (PARTITION BY "citizens"."person_id" ORDER BY HASH($sbx_dp_key, "citizens"."district"), "citizens"."district") <= 1 AND ROW_NUMBER() OVER (PARTITION BY "citizens"."person_id" ORDER BY HASH($sbx_dp_key, "citizens"."district"), "citizens"."district", HASH($sbx_dp_key, "citizens"."district")) <= 2) AS "citizens" GROUP BY "citizens"."district"
-- case: a join is left to the rows bound
SELECT v.ward, COUNT(*) AS n FROM citizens c JOIN visits v ON c.person_id = v.person_id GROUP BY v.ward
-- expect:
SELECT "v"."ward" AS "ward", COUNT(*) AS "n" FROM "citizens" AS "c" JOIN "visits" AS "v" ON "c"."person_id" = "v"."person_id" GROUP BY "v"."ward"
-- case: a global aggregate has one group
SELECT COUNT(*) AS n FROM visits
-- expect:
SELECT COUNT(*) AS "n" FROM "visits" AS "visits"
-- case: a unit count is the count of each unit's first kept row (one group per unit)
SELECT ward, COUNT(DISTINCT person_id) AS u FROM visits GROUP BY ward
-- expect:
SELECT "visits"."ward" AS "ward", COUNT("visits"."_sbx_dp_first") AS "u" FROM (SELECT *, CASE WHEN ROW_NUMBER() OVER (PARTITION BY "visits"."person_id" ORDER BY HASH($sbx_dp_key, "visits"."ward"), "visits"."ward", HASH($sbx_dp_key, "visits"."person_id", "visits"."ward")) = 1 AND NOT "visits"."person_id" IS NULL THEN 1 END AS "_sbx_dp_first" FROM "visits" AS "visits" QUALIFY DENSE_RANK() OVER (PARTITION BY "visits"."person_id" ORDER BY HASH($sbx_dp_key, "visits"."ward"), "visits"."ward") <= 1 AND ROW_NUMBER() OVER (PARTITION BY "visits"."person_id" ORDER BY HASH($sbx_dp_key, "visits"."ward"), "visits"."ward", HASH($sbx_dp_key, "visits"."person_id", "visits"."ward")) <= 3) AS "visits" GROUP BY "visits"."ward"
-- case: with a WHERE after the sample the unit count stays distinct
SELECT ward, COUNT(DISTINCT person_id) AS u FROM visits WHERE ward <> 'W1' GROUP BY ward
-- expect:
SELECT "visits"."ward" AS "ward", COUNT(DISTINCT "visits"."person_id") AS "u" FROM (SELECT * FROM "visits" AS "visits" QUALIFY DENSE_RANK() OVER (PARTITION BY "visits"."person_id" ORDER BY HASH($sbx_dp_key, "visits"."ward"), "visits"."ward") <= 1 AND ROW_NUMBER() OVER (PARTITION BY "visits"."person_id" ORDER BY HASH($sbx_dp_key, "visits"."ward"), "visits"."ward", HASH($sbx_dp_key, "visits"."person_id", "visits"."ward")) <= 3) AS "visits" WHERE "visits"."ward" <> 'W1' GROUP BY "visits"."ward"
