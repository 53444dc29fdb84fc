-- case: a single-table GROUP BY keeps one group per unit
SELECT ward, COUNT(*) AS n FROM visits GROUP BY ward
-- expect:
SELECT "visits"."ward" AS "ward", COUNT(*) AS "n" FROM (WITH "_sbx_dp_pick" AS (SELECT "visits"."person_id", ARG_MIN_NULL("visits"."ward", (HASH($sbx_dp_key, "visits"."ward"), "visits"."ward")) AS "_sbx_dp_group", COUNT(*) AS "_sbx_dp_rows" FROM "visits" AS "visits" GROUP BY "visits"."person_id") SELECT * FROM "visits" AS "visits" WHERE EXISTS(SELECT 1 FROM "_sbx_dp_pick" AS "_sbx_dp_pick" WHERE "_sbx_dp_pick"."person_id" IS NOT DISTINCT FROM "visits"."person_id" AND "_sbx_dp_pick"."_sbx_dp_group" IS NOT DISTINCT FROM "visits"."ward" AND "_sbx_dp_pick"."_sbx_dp_rows" <= 3) UNION ALL SELECT * FROM "visits" AS "visits" WHERE EXISTS(SELECT 1 FROM "_sbx_dp_pick" AS "_sbx_dp_pick" WHERE "_sbx_dp_pick"."person_id" IS NOT DISTINCT FROM "visits"."person_id" AND "_sbx_dp_pick"."_sbx_dp_group" IS NOT DISTINCT FROM "visits"."ward" AND "_sbx_dp_pick"."_sbx_dp_rows" > 3) QUALIFY ROW_NUMBER() OVER (PARTITION BY "visits"."person_id" ORDER BY HASH($sbx_dp_key, "visits"."ward")) <= 3) AS "visits" GROUP BY "visits"."ward"
-- case: a single-table GROUP BY of citizens keeps one of its two rows per unit by group
SELECT district, COUNT(*) AS n FROM citizens GROUP BY district
-- expect:
SELECT "citizens"."district" AS "district", COUNT(*) AS "n" FROM (WITH "_sbx_dp_pick" AS (SELECT "citizens"."person_id", ARG_MIN_NULL("citizens"."district", (HASH($sbx_dp_key, "citizens"."district"), "citizens"."district")) AS "_sbx_dp_group", COUNT(*) AS "_sbx_dp_rows" FROM "citizens" AS "citizens" GROUP BY "citizens"."person_id") SELECT * FROM "citizens" AS "citizens" WHERE EXISTS(SELECT 1 FROM "_sbx_dp_pick" AS "_sbx_dp_pick" WHERE "_sbx_dp_pick"."person_id" IS NOT DISTINCT FROM "citizens"."person_id" AND "_sbx_dp_pick"."_sbx_dp_group" IS NOT DISTINCT FROM "citizens"."district" AND "_sbx_dp_pick"."_sbx_dp_rows" <= 2) UNION ALL SELECT * FROM "citizens" AS "citizens" WHERE EXISTS(SELECT 1 FROM "_sbx_dp_pick" AS "_sbx_dp_pick" WHERE "_sbx_dp_pick"."person_id" IS NOT DISTINCT FROM "citizens"."person_id" AND "_sbx_dp_pick"."_sbx_dp_group" IS NOT DISTINCT FROM "citizens"."district" AND "_sbx_dp_pick"."_sbx_dp_rows" > 2) QUALIFY ROW_NUMBER() OVER (PARTITION BY "citizens"."person_id" ORDER BY HASH($sbx_dp_key, "citizens"."district")) <= 2) AS "citizens" GROUP BY "citizens"."district"
-- case: a join is left to the rows bound
SELECT v.ward, COUNT(*) AS n FROM citizens c JOIN visits v ON c.person_id = v.person_id GROUP BY v.ward
-- expect:
SELECT "v"."ward" AS "ward", COUNT(*) AS "n" FROM "citizens" AS "c" JOIN "visits" AS "v" ON "c"."person_id" = "v"."person_id" GROUP BY "v"."ward"
-- case: a global aggregate has one group
SELECT COUNT(*) AS n FROM visits
-- expect:
SELECT COUNT(*) AS "n" FROM "visits" AS "visits"
