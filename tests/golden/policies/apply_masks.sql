-- case: generalized date in select and group by
SELECT birth_date, COUNT(*) AS n FROM citizens GROUP BY birth_date
-- expect:
SELECT CAST(DATE_TRUNC('YEAR', "citizens"."birth_date") AS DATE) AS "birth_date", COUNT(*) AS "n" FROM "citizens" AS "citizens" GROUP BY CAST(DATE_TRUNC('YEAR', "citizens"."birth_date") AS DATE)
-- case: partial mask inside a CTE and in WHERE
WITH p AS (SELECT phone, person_id FROM citizens WHERE phone LIKE '%12') SELECT phone, COUNT(DISTINCT person_id) FROM p GROUP BY phone
-- expect:
WITH "p" AS (SELECT CASE WHEN LENGTH("citizens"."phone") > 2 THEN LEFT("citizens"."phone", 0) || '***' || RIGHT("citizens"."phone", 2) ELSE '***' END AS "phone", "citizens"."person_id" AS "person_id" FROM "citizens" AS "citizens" WHERE CASE WHEN LENGTH("citizens"."phone") > 2 THEN LEFT("citizens"."phone", 0) || '***' || RIGHT("citizens"."phone", 2) ELSE '***' END LIKE '%12') SELECT "p"."phone" AS "phone", COUNT(DISTINCT "p"."person_id") AS "_col_1" FROM "p" AS "p" GROUP BY "p"."phone"
-- case: bounds clamp an aggregate column
SELECT sex, SUM(income) AS total FROM citizens GROUP BY sex
-- expect:
SELECT "citizens"."sex" AS "sex", SUM(CASE WHEN "citizens"."income" < 0 THEN 0 WHEN "citizens"."income" > 1000000 THEN 1000000 ELSE "citizens"."income" END) AS "total" FROM "citizens" AS "citizens" GROUP BY "citizens"."sex"
-- case: unmasked columns are left alone
SELECT district, COUNT(*) FROM citizens WHERE diagnosis = 'J10' GROUP BY district
-- expect:
SELECT "citizens"."district" AS "district", COUNT(*) AS "_col_1" FROM "citizens" AS "citizens" WHERE "citizens"."diagnosis" = 'J10' GROUP BY "citizens"."district"
