#!/usr/bin/env python3
"""Reads a Delta table with the Python `deltalake` package and prints it as one JSON object.

An independent check of what weir writes: nothing here shares code with weir-delta.

    python3 tests/py/read_delta.py WAREHOUSE/main/bronze/vendors [COLUMN,COLUMN...]
    python3 tests/py/read_delta.py s3://bucket/prefix/vendors
    python3 tests/py/read_delta.py abfss://container@account.dfs.core.windows.net/prefix/vendors

An object-store table is read with the credentials and endpoint of the environment, the
variables weir reads (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION;
AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT_KEY, AZURITE_BLOB_STORAGE_URL for Azurite),
passed to deltalake as storage options; the log files are read through pyarrow's own S3 and
Azure file systems.

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


class Location:
    """Where a table lives: a pyarrow file system, the table's path in it, and deltalake's options."""

    def __init__(self, uri):
        from pyarrow import fs

        env = os.environ.get
        self.uri = uri
        self.remote = "://" in uri
        self.options = {}
        if uri.startswith(("s3://", "s3a://")):
            endpoint = env("AWS_ENDPOINT_URL")
            scheme, _, authority = (endpoint or "https://").partition("://")
            self.fs = fs.S3FileSystem(
                access_key=env("AWS_ACCESS_KEY_ID"),
                secret_key=env("AWS_SECRET_ACCESS_KEY"),
                region=env("AWS_REGION", "us-east-1"),
                endpoint_override=authority or None,
                scheme=scheme,
            )
            self.path = uri.split("://", 1)[1]
            for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ALLOW_HTTP"):
                if env(key):
                    self.options[key] = env(key)
        elif uri.startswith(("abfss://", "abfs://")):
            rest = uri.split("://", 1)[1]
            container, _, rest = rest.partition("@")
            host, _, path = rest.partition("/")
            account = host.split(".", 1)[0]
            emulator = env("AZURITE_BLOB_STORAGE_URL")
            scheme, _, authority = (emulator or "https://").partition("://")
            self.fs = fs.AzureFileSystem(
                account_name=account,
                account_key=env("AZURE_STORAGE_ACCOUNT_KEY"),
                blob_storage_authority=authority or None,
                blob_storage_scheme=scheme if emulator else None,
                # Azurite serves the DFS endpoint's calls (the hierarchical-namespace check) on the
                # same port.
                dfs_storage_authority=authority or None,
                dfs_storage_scheme=scheme if emulator else None,
            )
            self.path = f"{container}/{path}"
            self.options = {"account_name": account}
            if env("AZURE_STORAGE_ACCOUNT_KEY"):
                self.options["account_key"] = env("AZURE_STORAGE_ACCOUNT_KEY")
            if env("AZURE_STORAGE_USE_EMULATOR"):
                self.options["use_emulator"] = env("AZURE_STORAGE_USE_EMULATOR")
        else:
            self.fs = fs.LocalFileSystem()
            self.path = os.path.abspath(uri)

    def log(self, name=""):
        return f"{self.path}/_delta_log" + (f"/{name}" if name else "")

    def exists(self, path):
        from pyarrow import fs

        return self.fs.get_file_info(path).type != fs.FileType.NotFound

    def read(self, path):
        with self.fs.open_input_stream(path) as f:
            return f.read().decode("utf-8")

    def log_files(self):
        from pyarrow import fs

        return [i.base_name for i in self.fs.get_file_info(fs.FileSelector(self.log(), allow_not_found=True))]


def log_actions(location):
    """(version, [actions]) for each JSON commit file, in version order."""
    out = []
    for name in location.log_files():
        stem = name[: -len(".json")] if name.endswith(".json") else ""
        if not stem.isdigit():
            continue
        text = location.read(location.log(name))
        actions = [json.loads(line) for line in text.splitlines() if line.strip()]
        out.append((int(stem), actions))
    out.sort(key=lambda p: p[0])
    return out


def checkpoint_txns(location):
    """{appId: version} held by the last checkpoint, when the log has one."""
    marker = location.log("_last_checkpoint")
    if not location.exists(marker):
        return {}, -1
    import pyarrow.parquet as pq

    version = json.loads(location.read(marker))["version"]
    txns = {}
    for name in location.log_files():
        if name.startswith(f"{version:020d}.checkpoint") and name.endswith(".parquet"):
            part = pq.read_table(location.log(name), columns=["txn"], filesystem=location.fs)
            for row in part.column("txn").to_pylist():
                if row:
                    txns[row["appId"]] = row["version"]
    return txns, version


def main():
    if len(sys.argv) not in (2, 3):
        fail(2, "usage: read_delta.py TABLE_PATH [COLUMN,COLUMN...]")
    columns = sys.argv[2].split(",") if len(sys.argv) == 3 else None
    location = Location(sys.argv[1])
    if not location.log_files():
        fail(4, f"{sys.argv[1]} is not a Delta table (no _delta_log)")

    table = DeltaTable(location.uri if location.remote else location.path, storage_options=location.options or None)
    data = table.to_pyarrow_table(columns=columns)
    records = [plain(r) for r in data.to_pylist()]
    records.sort(key=lambda r: (str(r.get("id")), str(r.get("__START_AT"))))

    txn, since = checkpoint_txns(location)
    commits = []
    for version, actions in log_actions(location):
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
