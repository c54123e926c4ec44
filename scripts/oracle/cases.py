"""The cases of the differential suite: each one query over one dataset, run by Sluice as a
stream and by Spark as a batch read. A case id names it in the README's "Differences from
Spark" when the two disagree on purpose."""
from data import FLAT_DDL, NESTED_DDL


class Case:
    def __init__(self, cid, dataset, fmt, schema, sql, options=None, output_mode="append",
                 group=None):
        self.id = cid
        self.dataset = dataset
        self.format = fmt
        self.schema = schema  # Spark DDL, or None to infer
        self.sql = sql
        self.options = options or {}
        self.output_mode = output_mode
        # Expression cases run together as columns of one query (see run.py).
        self.group = group


# Each format's datasets and the options that read them.
FORMATS = {
    "json": ("json", "json", {}),
    "json_multiline": ("json_multiline", "json", {"multiLine": "true"}),
    "csv_header": ("csv_header", "csv", {"header": "true"}),
    "csv_plain": ("csv_plain", "csv", {}),
    "parquet": ("parquet", "parquet", {}),
}

PROJECTIONS = {
    "all": "SELECT * FROM source",
    "one": "SELECT qty FROM source",
    "some": "SELECT id, name, ts FROM source",
    "filtered": "SELECT id, price, day FROM source WHERE qty > 100 AND name IS NOT NULL",
    "last": "SELECT price FROM source",
}

MODES = ["PERMISSIVE", "DROPMALFORMED", "FAILFAST"]


def format_cases():
    cases = []
    for fname, (dataset, fmt, options) in FORMATS.items():
        modes = MODES if fmt in ("json", "csv") else ["PERMISSIVE"]
        for pname, sql in PROJECTIONS.items():
            for mode in modes:
                opts = dict(options)
                if fmt in ("json", "csv"):
                    opts["mode"] = mode
                cases.append(Case(f"format/{fname}/{pname}/{mode.lower()}", dataset, fmt,
                                  FLAT_DDL, sql, opts))
    cases.append(Case("format/text/all", "text", "text", "value STRING",
                      "SELECT * FROM source"))
    cases.append(Case("format/text/filtered", "text", "text", "value STRING",
                      "SELECT value FROM source WHERE value LIKE '%qty=1%'"))
    # Files with malformed records, in each mode, with and without the corrupt-record column.
    for dataset, fmt, options in [("json_dirty", "json", {}),
                                  ("csv_dirty", "csv", {"header": "true"})]:
        for pname, sql in [("all", "SELECT * FROM source"), ("one", "SELECT qty FROM source"),
                           ("some", "SELECT id, name FROM source")]:
            for mode in MODES:
                cases.append(Case(f"malformed/{fmt}/{pname}/{mode.lower()}", dataset, fmt,
                                  FLAT_DDL, sql, dict(options, mode=mode)))
        cases.append(Case(f"malformed/{fmt}/corrupt_column", dataset, fmt,
                          FLAT_DDL + ", _corrupt_record STRING", "SELECT * FROM source",
                          dict(options, mode="PERMISSIVE")))
    return cases


# Expressions Spark users write, from Spark's SQL reference and its SQL tests, over the nested
# dataset (columns: id, s, n, d, big, flag, ts, dt, dec, arr, words, m, st, items, user).
EXPRESSIONS = {
    "arithmetic": [
        "n + 1", "n - d", "n * 2", "n / 4", "n div 4", "n % 7", "-n", "abs(n)", "d * 1.5",
        "big + 1", "dec + 1", "dec * 2", "dec / 3", "n / 0", "n % 0", "pmod(n, 7)",
        "round(d, 1)", "round(2.5)", "round(-2.5)", "ceil(d)", "floor(d)", "sqrt(abs(d))",
        "power(n, 2)", "exp(0)", "ln(abs(d) + 1)", "log10(100)", "greatest(n, 0)",
        "least(n, 0)", "signum(n)", "1 / 3", "5 div 2", "big * 2", "n + big",
    ],
    "casts": [
        "CAST(d AS INT)", "CAST(n AS STRING)", "CAST(s AS INT)", "CAST(s AS DOUBLE)",
        "CAST('12' AS INT)", "CAST(' 12 ' AS INT)", "CAST('1e3' AS DOUBLE)",
        "CAST(dec AS INT)", "CAST(flag AS INT)", "CAST(n AS BOOLEAN)", "CAST(ts AS DATE)",
        "CAST(dt AS TIMESTAMP)", "CAST(ts AS STRING)", "CAST(dt AS STRING)",
        "CAST(ts AS BIGINT)", "CAST(big AS INT)", "CAST(d AS DECIMAL(5,1))",
        "CAST('abc' AS DATE)", "CAST('2024-01-05' AS DATE)",
        "CAST('2024-01-05 10:00:00' AS TIMESTAMP)", "CAST(s AS BOOLEAN)",
        "CAST('true' AS BOOLEAN)", "CAST(d AS STRING)", "CAST(dec AS STRING)",
        "CAST(1e10 AS INT)",
    ],
    "strings": [
        "upper(s)", "lower(s)", "length(s)", "trim(s)", "ltrim(s)", "rtrim(s)",
        "concat(s, '-', n)", "concat_ws('|', s, 'x')", "s || 'x'", "substring(s, 2, 3)",
        "substr(s, 0, 2)", "substring(s, -2)", "replace(s, 'a', 'A')", "reverse(s)",
        "repeat(s, 2)", "lpad(s, 8, '*')", "rpad(s, 8, '*')", "instr(s, 'a')",
        "locate('a', s)", "initcap(s)", "split(s, ' ')", "split(s, ' ')[0]",
        "regexp_replace(s, '[aeiou]', '#')", "regexp_extract(s, '([a-z]+)', 1)",
        "s LIKE 'a%'", "s LIKE '%\\\\_%'", "s ILIKE 'b%'", "s RLIKE '^[A-Z]'", "left(s, 2)",
        "right(s, 2)", "ascii(s)", "char(65)", "translate(s, 'ae', 'AE')", "sha2(s, 256)",
        "md5(s)", "hex(n)", "concat_ws(',', words)", "lower(s) = 'beta'", "s < 'b'",
        "startswith(s, 'a')", "contains(s, 'a')", "btrim(s)", "octet_length(s)",
    ],
    "dates": [
        "year(ts)", "month(ts)", "day(ts)", "dayofmonth(dt)", "dayofweek(dt)",
        "dayofyear(dt)", "hour(ts)", "minute(ts)", "second(ts)", "weekofyear(dt)",
        "quarter(dt)", "date_add(dt, 3)", "date_sub(dt, 3)", "datediff(dt, '2024-01-01')",
        "add_months(dt, 1)", "last_day(dt)", "next_day(dt, 'Mon')", "trunc(dt, 'MM')",
        "date_trunc('hour', ts)", "date_format(ts, 'yyyy-MM-dd HH:mm')",
        "to_date('2024-02-03')", "to_date('03/02/2024', 'dd/MM/yyyy')",
        "to_timestamp('2024-02-03 04:05:06')", "to_timestamp('03/02/2024 10:11', 'dd/MM/yyyy HH:mm')",
        "unix_timestamp(ts)", "from_unixtime(0)", "from_unixtime(1700000000, 'yyyy-MM-dd')",
        "timestamp_seconds(1700000000)", "make_date(2024, 2, 29)", "extract(year FROM ts)",
        "date_part('month', ts)", "ts + INTERVAL 1 HOUR", "dt + 1", "ts > '2024-03-01'",
    ],
    "conditional": [
        "CASE WHEN n > 0 THEN 'pos' WHEN n < 0 THEN 'neg' ELSE 'zero' END",
        "CASE n WHEN 1 THEN 'one' ELSE 'other' END", "if(flag, 1, 0)", "coalesce(n, 0)",
        "nvl(s, 'none')", "nullif(n, 0)", "isnull(n)", "isnotnull(s)", "n IS NULL",
        "n BETWEEN 0 AND 10", "n IN (1, 2, 3)", "s IN ('alpha', 'Beta')", "NOT flag",
        "flag AND n > 0", "flag OR n > 0", "n = 5", "s = 'alpha'", "n <=> NULL",
        "n <> 3", "nvl2(n, 'has', 'none')",
    ],
    "collections": [
        "arr[0]", "arr[1]", "arr[10]", "arr[-1]", "element_at(arr, 1)",
        "element_at(arr, -1)", "element_at(arr, 10)", "size(arr)", "size(words)",
        "array_contains(arr, 5)", "array_max(arr)", "array_min(arr)", "sort_array(arr)",
        "array_distinct(arr)", "array_position(arr, 5)", "slice(arr, 1, 2)",
        "array_join(words, ',')", "cardinality(arr)", "m['k1']", "element_at(m, 'k1')",
        "map_keys(m)", "map_values(m)", "size(m)", "st.a", "st.b", "st.`end`",
        "items[0].sku", "items[0].qty", "user.name", "user.groups[0]", "size(user.groups)",
        "array(n, 1)", "map('a', n)", "named_struct('x', n, 'y', s)", "flatten(array(arr, arr))",
        "array_union(arr, array(1))",
    ],
    "json": [
        "get_json_object('{\"a\": {\"b\": 7}}', '$.a.b')", "to_json(st)",
    ],
}


def expression_cases():
    cases = []
    for group, exprs in EXPRESSIONS.items():
        for i, expr in enumerate(exprs):
            cases.append(Case(f"expr/{group}/{i:02d}", "nested", "json", NESTED_DDL,
                              f"SELECT id, {expr} AS v FROM source", group=group))
            cases[-1].expr = expr
    return cases


# Clauses: aggregates, windows, generators.
CLAUSES = [
    ("clause/count_by", "SELECT s, count(*) AS c, count(n) AS cn FROM source GROUP BY s", "complete"),
    ("clause/sum_avg", "SELECT flag, sum(n) AS total, avg(d) AS mean, min(ts) AS first, max(dt) AS last "
     "FROM source GROUP BY flag", "complete"),
    ("clause/having", "SELECT s, count(*) AS c FROM source GROUP BY s HAVING count(*) > 10", "complete"),
    ("clause/count_distinct_words", "SELECT flag, sum(size(words)) AS w FROM source GROUP BY flag", "complete"),
    ("clause/window_tumbling", "SELECT window(ts, '1 day') AS w, count(*) AS c FROM source "
     "GROUP BY window(ts, '1 day')", "complete"),
    ("clause/window_sliding", "SELECT window(ts, '1 day', '6 hours') AS w, sum(n) AS total FROM source "
     "GROUP BY window(ts, '1 day', '6 hours')", "complete"),
    ("clause/window_start_offset", "SELECT window(ts, '1 hour', '1 hour', '15 minutes') AS w, count(*) AS c "
     "FROM source GROUP BY window(ts, '1 hour', '1 hour', '15 minutes')", "complete"),
    ("clause/explode", "SELECT id, explode(arr) AS x FROM source", "append"),
    ("clause/explode_outer", "SELECT id, explode_outer(words) AS w FROM source", "append"),
    ("clause/posexplode", "SELECT id, posexplode(arr) FROM source", "append"),
    ("clause/lateral_view", "SELECT id, x FROM source LATERAL VIEW explode(arr) t AS x", "append"),
    ("clause/lateral_view_outer", "SELECT id, w FROM source LATERAL VIEW OUTER explode(words) t AS w", "append"),
    ("clause/lateral_view_structs", "SELECT id, it.sku, it.qty FROM source LATERAL VIEW explode(items) t AS it", "append"),
    ("clause/where_nested", "SELECT id FROM source WHERE user.name = 'ann' AND st.a > 1", "append"),
    ("clause/order_complete", "SELECT s, count(*) AS c FROM source GROUP BY s ORDER BY c DESC", "complete"),
    ("clause/group_by_expr", "SELECT year(ts) AS y, month(ts) AS mo, count(*) AS c FROM source "
     "GROUP BY year(ts), month(ts)", "complete"),
    ("clause/distinct_agg", "SELECT flag, count(DISTINCT s) AS ds FROM source GROUP BY flag", "complete"),
    ("clause/metadata", "SELECT id, _metadata.file_name AS f FROM source", "append"),
]


def clause_cases():
    return [Case(cid, "nested", "json", NESTED_DDL, sql, output_mode=mode)
            for cid, sql, mode in CLAUSES]


def inference_cases(names):
    return [Case(f"infer/{name}", f"infer/{name}", "json", None, "SELECT * FROM source")
            for name in names]


def all_cases(inference_names):
    return format_cases() + expression_cases() + clause_cases() + inference_cases(inference_names)
