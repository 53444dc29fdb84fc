-- case: a count and a sum over one table become clamped per-person contributions, summed
SELECT COUNT(*) AS n, SUM(cost) AS s FROM visits
-- expect:
SELECT SUM("visits"."_sbx_dp_c0") AS "n", SUM("visits"."_sbx_dp_c1") AS "s" FROM (SELECT "visits"."person_id", CASE WHEN COUNT(*) > 3 THEN 3 ELSE COUNT(*) END AS "_sbx_dp_c0", CASE WHEN COUNT(*) > 3 THEN SUM("visits"."cost") * 3 / COUNT(*) ELSE SUM("visits"."cost") END AS "_sbx_dp_c1" FROM "visits" AS "visits" GROUP BY "visits"."person_id") AS "visits"
-- case: a sum next to a mean's hidden parts: the sum scales by the row count, the mean's parts by its values
SELECT SUM(cost) AS s, AVG(cost) AS a FROM visits
-- expect:
SELECT SUM("visits"."_sbx_dp_c0") AS "s", CAST(SUM("visits"."_sbx_dp_c1") AS DOUBLE) / SUM("visits"."_sbx_dp_c1_n") AS "a" FROM (SELECT "visits"."person_id", CASE WHEN COUNT(*) > 3 THEN SUM("visits"."cost") * 3 / COUNT(*) ELSE SUM("visits"."cost") END AS "_sbx_dp_c0", CASE WHEN COUNT("visits"."cost") > 3 THEN SUM("visits"."cost") * 3 / COUNT("visits"."cost") ELSE SUM("visits"."cost") END AS "_sbx_dp_c1", CASE WHEN COUNT("visits"."cost") > 3 THEN 3 ELSE COUNT("visits"."cost") END AS "_sbx_dp_c1_n" FROM "visits" AS "visits" GROUP BY "visits"."person_id") AS "visits"
-- case: the query's filter moves inside, before the clamp; a mean is the ratio of its clamped parts
SELECT AVG(cost) AS a, COUNT(cost) AS k FROM visits v WHERE v.ward = 'A'
-- expect:
SELECT CAST(SUM("v"."_sbx_dp_c0") AS DOUBLE) / SUM("v"."_sbx_dp_c0_n") AS "a", SUM("v"."_sbx_dp_c1") AS "k" FROM (SELECT "v"."person_id", CASE WHEN COUNT("v"."cost") > 3 THEN SUM("v"."cost") * 3 / COUNT("v"."cost") ELSE SUM("v"."cost") END AS "_sbx_dp_c0", CASE WHEN COUNT("v"."cost") > 3 THEN 3 ELSE COUNT("v"."cost") END AS "_sbx_dp_c0_n", CASE WHEN COUNT("v"."cost") > 3 THEN 3 ELSE COUNT("v"."cost") END AS "_sbx_dp_c1" FROM "visits" AS "v" WHERE "v"."ward" = 'A' GROUP BY "v"."person_id") AS "v"
-- case: with groups the sample stays (the per-person table would be as large as the input)
SELECT ward, COUNT(*) AS n FROM visits GROUP BY ward
-- expect:
SELECT "visits"."ward" AS "ward", COUNT(*) AS "n" FROM "visits" AS "visits" GROUP BY "visits"."ward"
-- case: a count of distinct people is not clamped here: the sample stays
SELECT COUNT(*) AS n, COUNT(DISTINCT person_id) AS p FROM visits
-- expect:
SELECT COUNT(*) AS "n", COUNT(DISTINCT "visits"."person_id") AS "p" FROM "visits" AS "visits"
-- case: a join stays with the sample
SELECT COUNT(*) AS n FROM citizens c JOIN visits v ON c.person_id = v.person_id
-- expect:
SELECT COUNT(*) AS "n" FROM "citizens" AS "c" JOIN "visits" AS "v" ON "c"."person_id" = "v"."person_id"
