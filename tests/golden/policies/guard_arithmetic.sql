-- case: protected integer times a literal computes in DOUBLE
SELECT SUM(income * 2) AS doubled FROM citizens
-- expect:
SELECT SUM(CAST("citizens"."income" AS DOUBLE) * 2) AS "doubled" FROM "citizens" AS "citizens"
-- case: division is not guarded (it cannot overflow)
SELECT AVG(income / 1000) FROM citizens
-- expect:
SELECT AVG("citizens"."income" / 1000) AS "_col_0" FROM "citizens" AS "citizens"
-- case: literal arithmetic is left alone
SELECT COUNT(*) + 1 FROM citizens
-- expect:
SELECT COUNT(*) + 1 AS "_col_0" FROM "citizens" AS "citizens"
