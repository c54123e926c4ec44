"""Seeded source files for the differential suite: the same rows written as JSON lines,
multi-line JSON, CSV with and without a header, Parquet and text, plus files with malformed
records, and nested records for the expression cases. Values carry what real files carry:
nulls, quotes and separators inside fields, unicode, empty files, every timestamp spelling."""
import datetime as dt
import decimal
import json
import os
import random

# The flat rows' schema, as Spark DDL and in the order the columns are written.
FLAT_DDL = ("id BIGINT, name STRING, qty INT, score DOUBLE, ok BOOLEAN, "
            "ts TIMESTAMP, day DATE, price DECIMAL(10,2)")
FLAT_COLUMNS = ["id", "name", "qty", "score", "ok", "ts", "day", "price"]

NAMES = ["alice", "Bob", "carol, jr.", "dan \"the man\"", "élodie", "李雷", "o'brien",
         "tab\there", "", "zoë 🚀", "semi;colon", "  padded  "]

# Timestamp spellings Spark's JSON and CSV readers take with the default timestampFormat.
TS_SPELLINGS = [
    lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ"),
    lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z",
    lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    lambda t: (t + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02:00"),
    lambda t: t.strftime("%Y-%m-%dT%H:%M:%S"),
]


def flat_rows(rng, n):
    """`n` rows of the flat schema, as Python values (None for null)."""
    base = dt.datetime(2024, 3, 10, 0, 0, 0, tzinfo=dt.timezone.utc)
    rows = []
    for i in range(n):
        def maybe(v, p=0.12):
            return None if rng.random() < p else v
        t = base + dt.timedelta(seconds=rng.randrange(0, 3 * 86400),
                                microseconds=rng.randrange(0, 1_000_000))
        rows.append({
            "id": i,
            "name": maybe(rng.choice(NAMES)),
            "qty": maybe(rng.randrange(-50, 1000)),
            "score": maybe(round(rng.uniform(-100, 100), rng.choice([0, 1, 3, 6]))),
            "ok": maybe(rng.random() < 0.5),
            "ts": maybe(t),
            "day": maybe((base + dt.timedelta(days=rng.randrange(-400, 400))).date()),
            "price": maybe(decimal.Decimal(rng.randrange(-99999, 999999)) / 100),
        })
    return rows


def _json_value(column, v, rng):
    if v is None:
        return None
    if column == "ts":
        return rng.choice(TS_SPELLINGS)(v)
    if column == "day":
        return v.isoformat()
    if column == "price":
        return float(v)
    return v


def write_json_lines(folder, rows, rng, files=3):
    """JSON lines over `files` files, plus an empty file; nulls written or left out."""
    os.makedirs(folder, exist_ok=True)
    chunks = [rows[i::files] for i in range(files)]
    for k, chunk in enumerate(chunks):
        with open(os.path.join(folder, f"part-{k}.json"), "w", encoding="utf-8") as f:
            for r in chunk:
                obj = {}
                for c in FLAT_COLUMNS:
                    v = _json_value(c, r[c], rng)
                    if v is None and rng.random() < 0.5:
                        continue  # a missing field reads as null too
                    obj[c] = v
                f.write(json.dumps(obj, ensure_ascii=rng.random() < 0.5) + "\n")
    open(os.path.join(folder, "empty.json"), "w").close()


def write_json_documents(folder, rows, rng, files=2):
    """multiLine JSON: each file one pretty-printed array of records."""
    os.makedirs(folder, exist_ok=True)
    for k in range(files):
        docs = [{c: _json_value(c, r[c], rng) for c in FLAT_COLUMNS} for r in rows[k::files]]
        with open(os.path.join(folder, f"doc-{k}.json"), "w", encoding="utf-8") as f:
            json.dump(docs, f, indent=2, ensure_ascii=False)


def _csv_field(column, v, rng):
    if v is None:
        return ""
    if column == "ts":
        text = rng.choice(TS_SPELLINGS)(v)
    elif column == "day":
        text = v.isoformat()
    elif column == "ok":
        text = rng.choice(["true", "TRUE", "True"]) if v else rng.choice(["false", "FALSE"])
    else:
        text = str(v)
    if column == "name" and (text == "" or any(ch in text for ch in ",\"\n\t;") or text != text.strip()):
        return '"' + text.replace('"', '""') + '"'
    return text


def write_csv(folder, rows, rng, header, files=3):
    """CSV over `files` files (RFC 4180 quoting), with or without a header line, plus an
    empty file."""
    os.makedirs(folder, exist_ok=True)
    for k in range(files):
        with open(os.path.join(folder, f"part-{k}.csv"), "w", encoding="utf-8", newline="") as f:
            if header:
                f.write(",".join(FLAT_COLUMNS) + "\n")
            for r in rows[k::files]:
                f.write(",".join(_csv_field(c, r[c], rng) for c in FLAT_COLUMNS) + "\n")
    open(os.path.join(folder, "empty.csv"), "w").close()


def write_parquet(folder, rows, files=2):
    import pyarrow as pa
    import pyarrow.parquet as pq
    os.makedirs(folder, exist_ok=True)
    schema = pa.schema([
        ("id", pa.int64()), ("name", pa.string()), ("qty", pa.int32()), ("score", pa.float64()),
        ("ok", pa.bool_()), ("ts", pa.timestamp("us", tz="UTC")), ("day", pa.date32()),
        ("price", pa.decimal128(10, 2)),
    ])
    for k in range(files):
        chunk = rows[k::files]
        table = pa.Table.from_pylist(chunk, schema=schema)
        pq.write_table(table, os.path.join(folder, f"part-{k}.parquet"))


def write_text(folder, rows, files=2):
    os.makedirs(folder, exist_ok=True)
    for k in range(files):
        with open(os.path.join(folder, f"part-{k}.txt"), "w", encoding="utf-8") as f:
            for r in rows[k::files]:
                f.write(f"{r['id']} {r['name'] or ''} qty={r['qty']}\n")
    open(os.path.join(folder, "empty.txt"), "w").close()


def write_dirty_json(folder, rows, rng):
    """JSON lines with malformed records among good ones: broken syntax, wrong types,
    a non-object line."""
    os.makedirs(folder, exist_ok=True)
    bad = ['{"id": 1, "name": "broken"', '{"id": "not a number", "name": "x"}',
           '[1, 2, 3]', '{"id": 5, "qty": "seven"}', 'plain text', '{"id": 7, "ok": "yes"}']
    with open(os.path.join(folder, "dirty.json"), "w", encoding="utf-8") as f:
        for i, r in enumerate(rows):
            obj = {c: _json_value(c, r[c], rng) for c in FLAT_COLUMNS}
            f.write(json.dumps(obj) + "\n")
            if i % 7 == 3:
                f.write(bad[(i // 7) % len(bad)] + "\n")


def write_dirty_csv(folder, rows, rng):
    """CSV with a header and malformed records: too few fields, too many, a value of the
    wrong type."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "dirty.csv"), "w", encoding="utf-8", newline="") as f:
        f.write(",".join(FLAT_COLUMNS) + "\n")
        for i, r in enumerate(rows):
            f.write(",".join(_csv_field(c, r[c], rng) for c in FLAT_COLUMNS) + "\n")
            if i % 9 == 4:
                kind = (i // 9) % 3
                if kind == 0:
                    f.write(f"{1000 + i},short\n")
                elif kind == 1:
                    f.write(f"{1000 + i},long,1,1.0,true,2024-01-01T00:00:00Z,2024-01-01,1.00,extra\n")
                else:
                    f.write(f"{1000 + i},typed,not-a-number,1.0,true,2024-01-01T00:00:00Z,2024-01-01,1.00\n")


# The nested records' schema, for the expression cases.
NESTED_DDL = ("id BIGINT, s STRING, n INT, d DOUBLE, big BIGINT, flag BOOLEAN, ts TIMESTAMP, "
              "dt DATE, dec DECIMAL(12,3), arr ARRAY<INT>, words ARRAY<STRING>, "
              "m MAP<STRING, INT>, st STRUCT<a: INT, b: STRING, `end`: STRING>, "
              "items ARRAY<STRUCT<sku: STRING, qty: INT>>, `user` STRUCT<name: STRING, groups: ARRAY<STRING>>")


def nested_rows(rng, n):
    base = dt.datetime(2024, 2, 28, 22, 0, 0, tzinfo=dt.timezone.utc)
    words = ["alpha", "Beta", "gamma delta", "", "ümlaut", "x_y%z", "a.b", "CamelCase", "123"]
    rows = []
    for i in range(n):
        def maybe(v, p=0.1):
            return None if rng.random() < p else v
        t = base + dt.timedelta(seconds=rng.randrange(0, 5 * 86400), microseconds=rng.randrange(0, 10**6))
        arr = maybe([maybe(rng.randrange(-20, 100), 0.1) for _ in range(rng.randrange(0, 5))])
        rows.append({
            "id": i,
            "s": maybe(rng.choice(words) + (" " if rng.random() < 0.1 else "")),
            "n": maybe(rng.randrange(-30, 30)),
            "d": maybe(rng.choice([0.0, -0.5, 2.5, 3.75, 1e10, -7.125, 0.1, 123.456])),
            "big": maybe(rng.choice([0, 1, -1, 2**40, -(2**40), 9007199254740993])),
            "flag": maybe(rng.random() < 0.5),
            "ts": maybe(t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
            "dt": maybe((base + dt.timedelta(days=rng.randrange(-40, 40))).date().isoformat()),
            "dec": maybe(float(decimal.Decimal(rng.randrange(-10**6, 10**6)) / 1000)),
            "arr": arr,
            "words": maybe([rng.choice(words) for _ in range(rng.randrange(0, 4))]),
            "m": maybe({rng.choice(["k1", "k2", "k3"]): rng.randrange(0, 9) for _ in range(rng.randrange(0, 3))}),
            "st": maybe({"a": maybe(rng.randrange(0, 5)), "b": maybe(rng.choice(words)),
                         "end": maybe(rng.choice(["x", "y"]))}),
            "items": maybe([{"sku": rng.choice(["A", "B", "C"]), "qty": rng.randrange(1, 4)}
                            for _ in range(rng.randrange(0, 3))]),
            "user": maybe({"name": rng.choice(["ann", "ben", None]),
                           "groups": [rng.choice(["dev", "ops", "qa"]) for _ in range(rng.randrange(0, 3))]}),
        })
    return rows


def write_nested(folder, rows, files=2):
    os.makedirs(folder, exist_ok=True)
    for k in range(files):
        with open(os.path.join(folder, f"part-{k}.json"), "w", encoding="utf-8") as f:
            for r in rows[k::files]:
                f.write(json.dumps({c: v for c, v in r.items() if v is not None}) + "\n")


# Odd shapes for inference.
def inference_shapes(rng):
    """name -> list of JSON lines whose inferred schema Spark and Sluice must agree on."""
    return {
        "empty_objects": ['{"a": 1, "meta": {}, "deep": {"x": {}}}', '{"a": 2, "meta": {}}'],
        "mixed_types": ['{"v": 1}', '{"v": 2.5}', '{"v": "text"}', '{"w": 1}', '{"w": 10000000000}'],
        "int_and_double": ['{"v": 1, "u": 1.5}', '{"v": 2.0, "u": 2}'],
        "deep_nesting": ['{"a": {"b": {"c": {"d": [1, 2, {"e": 1}]}}}}',
                         '{"a": {"b": {"c": {"d": []}}}}'],
        "sparse_fields": [json.dumps({f"f{rng.randrange(0, 12)}": rng.randrange(0, 5)}) for _ in range(30)],
        "all_null": ['{"a": null, "b": 1}', '{"a": null, "b": 2}'],
        "empty_arrays": ['{"a": [], "b": [[]], "c": [{}]}', '{"a": []}'],
        "array_of_mixed": ['{"a": [1, "x", 2.5]}', '{"a": [true]}'],
        "struct_vs_scalar": ['{"a": {"x": 1}}', '{"a": 5}'],
        "unicode_keys": ['{"ключ": 1, "名前": "x", "with space": true}'],
        "nested_arrays_of_structs": ['{"r": [{"k": "a", "v": 1}, {"k": "b", "w": [1]}]}',
                                     '{"r": [{"k": "c", "v": null}]}'],
        "bools_and_nulls": ['{"a": true, "b": null}', '{"a": false, "b": false}'],
        "big_numbers": ['{"a": 9223372036854775807, "b": 18446744073709551615, "c": 1e400}'],
        "top_level_array": ['[{"a": 1}, {"a": 2, "b": "x"}]', '{"a": 3}'],
    }


def write_lines(folder, name, lines):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")


def make_all(root, seed):
    """Every dataset under `root`; returns {name: (folder, ddl)}."""
    rng = random.Random(seed)
    rows = flat_rows(rng, 240)
    out = {}
    write_json_lines(os.path.join(root, "json"), rows, rng)
    write_json_documents(os.path.join(root, "json_multiline"), rows, rng)
    write_csv(os.path.join(root, "csv_header"), rows, rng, header=True)
    write_csv(os.path.join(root, "csv_plain"), rows, rng, header=False)
    write_parquet(os.path.join(root, "parquet"), rows)
    write_text(os.path.join(root, "text"), rows)
    write_dirty_json(os.path.join(root, "json_dirty"), rows[:60], rng)
    write_dirty_csv(os.path.join(root, "csv_dirty"), rows[:60], rng)
    write_nested(os.path.join(root, "nested"), nested_rows(rng, 160))
    for name, lines in inference_shapes(rng).items():
        write_lines(os.path.join(root, "infer", name), "data.json", lines)
    for name in ["json", "json_multiline", "csv_header", "csv_plain", "parquet", "text",
                 "json_dirty", "csv_dirty", "nested"]:
        out[name] = os.path.join(root, name)
    return out
