-- case: every scan of a table keeps at most its rows per unit
SELECT ward, COUNT(*) AS n FROM visits GROUP BY ward
-- expect:
SELECT "visits"."ward" AS "ward", COUNT(*) AS "n" FROM (SELECT * FROM "visits" AS "visits" QUALIFY ROW_NUMBER() OVER (PARTITION BY "visits"."person_id" ORDER BY SHA256(CONCAT_WS('|', $sbx_dp_key, CAST("visits"."cost" AS TEXT), CAST("visits"."person_id" AS TEXT), CAST("visits"."ward" AS TEXT))), "visits"."cost", "visits"."person_id", "visits"."ward") <= 3) AS "visits" GROUP BY "visits"."ward"
-- case: a filtered scan is sampled after its row filter
SELECT district, COUNT(*) AS n FROM citizens GROUP BY district
-- expect:
SELECT "citizens"."district" AS "district", COUNT(*) AS "n" FROM (SELECT * FROM "citizens" AS "citizens" QUALIFY ROW_NUMBER() OVER (PARTITION BY "citizens"."person_id" ORDER BY SHA256(CONCAT_WS('|', $sbx_dp_key, CAST("citizens"."birth_date" AS TEXT), CAST("citizens"."diagnosis" AS TEXT), CAST("citizens"."district" AS TEXT), CAST("citizens"."income" AS TEXT), CAST("citizens"."name" AS TEXT), CAST("citizens"."national_id" AS TEXT), CAST("citizens"."person_id" AS TEXT), CAST("citizens"."phone" AS TEXT), CAST("citizens"."sex" AS TEXT))), "citizens"."birth_date", "citizens"."diagnosis", "citizens"."district", "citizens"."income", "citizens"."name", "citizens"."national_id", "citizens"."person_id", "citizens"."phone", "citizens"."sex") <= 2) AS "citizens" GROUP BY "citizens"."district"
-- case: both sides of a join on the unit are sampled
SELECT c.district, COUNT(*) AS n FROM citizens c JOIN visits v ON c.person_id = v.person_id GROUP BY c.district
-- expect:
SELECT "c"."district" AS "district", COUNT(*) AS "n" FROM (SELECT * FROM "citizens" AS "c" QUALIFY ROW_NUMBER() OVER (PARTITION BY "c"."person_id" ORDER BY SHA256(CONCAT_WS('|', $sbx_dp_key, CAST("c"."birth_date" AS TEXT), CAST("c"."diagnosis" AS TEXT), CAST("c"."district" AS TEXT), CAST("c"."income" AS TEXT), CAST("c"."name" AS TEXT), CAST("c"."national_id" AS TEXT), CAST("c"."person_id" AS TEXT), CAST("c"."phone" AS TEXT), CAST("c"."sex" AS TEXT))), "c"."birth_date", "c"."diagnosis", "c"."district", "c"."income", "c"."name", "c"."national_id", "c"."person_id", "c"."phone", "c"."sex") <= 2) AS "c" JOIN (SELECT * FROM "visits" AS "v" QUALIFY ROW_NUMBER() OVER (PARTITION BY "v"."person_id" ORDER BY SHA256(CONCAT_WS('|', $sbx_dp_key, CAST("v"."cost" AS TEXT), CAST("v"."person_id" AS TEXT), CAST("v"."ward" AS TEXT))), "v"."cost", "v"."person_id", "v"."ward") <= 3) AS "v" ON "c"."person_id" = "v"."person_id" GROUP BY "c"."district"
-- case: scans inside a CTE are sampled
WITH t AS (SELECT person_id, ward FROM visits) SELECT ward, COUNT(*) AS n FROM t GROUP BY ward
-- expect:
WITH "t" AS (SELECT "visits"."person_id" AS "person_id", "visits"."ward" AS "ward" FROM (SELECT * FROM "visits" AS "visits" QUALIFY ROW_NUMBER() OVER (PARTITION BY "visits"."person_id" ORDER BY SHA256(CONCAT_WS('|', $sbx_dp_key, CAST("visits"."cost" AS TEXT), CAST("visits"."person_id" AS TEXT), CAST("visits"."ward" AS TEXT))), "visits"."cost", "visits"."person_id", "visits"."ward") <= 3) AS "visits") SELECT "t"."ward" AS "ward", COUNT(*) AS "n" FROM "t" AS "t" GROUP BY "t"."ward"
