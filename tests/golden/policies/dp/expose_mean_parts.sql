-- case: an AVG gets its hidden sum and count
SELECT ward, AVG(cost) AS a FROM visits GROUP BY ward
-- expect:
SELECT "visits"."ward" AS "ward", AVG("visits"."cost") AS "a", SUM("visits"."cost") AS "_sbx_dp_sum_1", COUNT("visits"."cost") AS "_sbx_dp_count_1" FROM "visits" AS "visits" GROUP BY "visits"."ward"
-- case: no AVG, nothing added
SELECT ward, SUM(cost) AS s FROM visits GROUP BY ward
-- expect:
SELECT "visits"."ward" AS "ward", SUM("visits"."cost") AS "s" FROM "visits" AS "visits" GROUP BY "visits"."ward"
