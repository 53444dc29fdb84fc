-- case: every scan of a table keeps at most its rows per unit
SELECT ward, COUNT(*) AS n FROM visits GROUP BY ward
-- expect:
SELECT "visits"."ward" AS "ward", COUNT(*) AS "n" FROM (SELECT * FROM "visits" AS "visits" QUALIFY ROW_NUMBER() OVER (PARTITION BY "visits"."person_id" ORDER BY HASH($sbx_dp_key, "visits"."ward")) <= 3) AS "visits" GROUP BY "visits"."ward"
-- case: a filtered scan is sampled after its row filter
SELECT district, COUNT(*) AS n FROM citizens GROUP BY district
-- expect:
SELECT "citizens"."district" AS "district", COUNT(*) AS "n" FROM (SELECT * FROM "citizens" AS "citizens" QUALIFY ROW_NUMBER() OVER (PARTITION BY "citizens"."person_id" ORDER BY HASH($sbx_dp_key, "citizens"."district")) <= 2) AS "citizens" GROUP BY "citizens"."district"
-- case: both sides of a join on the unit are sampled
SELECT c.district, COUNT(*) AS n FROM citizens c JOIN visits v ON c.person_id = v.person_id GROUP BY c.district
-- expect:
SELECT "c"."district" AS "district", COUNT(*) AS "n" FROM (SELECT * FROM "citizens" AS "c" QUALIFY ROW_NUMBER() OVER (PARTITION BY "c"."person_id" ORDER BY HASH($sbx_dp_key, "c"."district", "c"."person_id")) <= 2) AS "c" JOIN (SELECT * FROM "visits" AS "v" QUALIFY ROW_NUMBER() OVER (PARTITION BY "v"."person_id" ORDER BY HASH($sbx_dp_key, "v"."person_id")) <= 3) AS "v" ON "c"."person_id" = "v"."person_id" GROUP BY "c"."district"
-- case: scans inside a CTE are sampled
WITH t AS (SELECT person_id, ward FROM visits) SELECT ward, COUNT(*) AS n FROM t GROUP BY ward
-- expect:
WITH "t" AS (SELECT "visits"."person_id" AS "person_id", "visits"."ward" AS "ward" FROM (SELECT * FROM "visits" AS "visits" QUALIFY ROW_NUMBER() OVER (PARTITION BY "visits"."person_id" ORDER BY HASH($sbx_dp_key, "visits"."person_id", "visits"."ward")) <= 3) AS "visits") SELECT "t"."ward" AS "ward", COUNT(*) AS "n" FROM "t" AS "t" GROUP BY "t"."ward"
