#!/usr/bin/env python3
"""Reads a Delta table with the Python `deltalake` package and prints it as one JSON object.

An independent check of what weir writes: nothing here shares code with weir-delta.

    python3 tests/py/read_delta.py WAREHOUSE/main/bronze/vendors [COLUMN,COLUMN...]

prints {"rows", "version", "columns", "schema", "data", "txn", "commits"}:
- data: every row (only the named columns, when a column list is given), sorted by `id` (then
  by `__START_AT` for SCD2 history), values as JSON
  (timestamps as ISO-8601 text, decimals as text, structs as objects, binary as hex);
- schema: the Delta schema as the log states it (`{"type": "struct", "fields": [...]}`);
- txn: {appId: version}, the latest application transaction per app, read from the log
  files (and the last checkpoint, if any) directly rather than through deltalake;
- commits: one entry per log JSON file in version order, with its commitInfo, its txn
  actions and how many files it added and removed.

Exits 3 with a `pip install -r requirements-test.txt` hint when deltalake is missing.
The deltalake wheel can abort at interpreter exit, so the result is flushed and the
process leaves with os._exit.
"""

import base64
import datetime
import decimal
import glob
import json
import os
import sys


def fail(code, message):
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    os._exit(code)


try:
    import pyarrow  # noqa: F401
    from deltalake import DeltaTable
except ImportError as e:
    fail(3, f"python3 cannot import deltalake/pyarrow ({e}); run: pip install -r requirements-test.txt")


def plain(value):
    """A JSON-friendly form of a pyarrow scalar's Python value."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        # Map columns come back as lists of (key, value) tuples.
        return [plain(v) for v in value]
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc)
        return value.isoformat()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, float) and value != value:
        return "NaN"
    return value


def log_actions(path):
    """(version, [actions]) for each JSON commit file, in version order."""
    out = []
    for name in glob.glob(os.path.join(path, "_delta_log", "*.json")):
        stem = os.path.basename(name)[: -len(".json")]
        if not stem.isdigit():
            continue
        with open(name, encoding="utf-8") as f:
            actions = [json.loads(line) for line in f if line.strip()]
        out.append((int(stem), actions))
    out.sort(key=lambda p: p[0])
    return out


def checkpoint_txns(path):
    """{appId: version} held by the last checkpoint, when the log has one."""
    marker = os.path.join(path, "_delta_log", "_last_checkpoint")
    if not os.path.exists(marker):
        return {}, -1
    import pyarrow.parquet as pq

    with open(marker, encoding="utf-8") as f:
        version = json.load(f)["version"]
    txns = {}
    for part in glob.glob(os.path.join(path, "_delta_log", f"{version:020d}.checkpoint*.parquet")):
        for row in pq.read_table(part, columns=["txn"]).column("txn").to_pylist():
            if row:
                txns[row["appId"]] = row["version"]
    return txns, version


def main():
    if len(sys.argv) not in (2, 3):
        fail(2, "usage: read_delta.py TABLE_PATH [COLUMN,COLUMN...]")
    path = sys.argv[1]
    columns = sys.argv[2].split(",") if len(sys.argv) == 3 else None
    if not os.path.isdir(os.path.join(path, "_delta_log")):
        fail(4, f"{path} is not a Delta table (no _delta_log)")

    table = DeltaTable(path)
    data = table.to_pyarrow_table(columns=columns)
    records = [plain(r) for r in data.to_pylist()]
    records.sort(key=lambda r: (str(r.get("id")), str(r.get("__START_AT"))))

    txn, since = checkpoint_txns(path)
    commits = []
    for version, actions in log_actions(path):
        info = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
        txns = [a["txn"] for a in actions if "txn" in a]
        if version > since:
            for t in txns:
                txn[t["appId"]] = t["version"]
        commits.append(
            {
                "version": version,
                "operation": info.get("operation"),
                "info": info,
                "txn": txns,
                "adds": sum(1 for a in actions if "add" in a),
                "removes": sum(1 for a in actions if "remove" in a),
            }
        )

    result = {
        "rows": data.num_rows,
        "version": table.version(),
        "columns": data.column_names,
        "schema": json.loads(table.schema().to_json()),
        "data": records,
        "txn": txn,
        "commits": commits,
    }
    sys.stdout.write(json.dumps(result, default=str))
    sys.stdout.write("\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the caller needs the reason on stderr and a nonzero code
        fail(1, f"read_delta.py: {type(e).__name__}: {e}")
