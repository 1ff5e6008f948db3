#!/usr/bin/env python3
"""Reads one Airtable table into a Delta table: the plain-Python alternative to `weir run`.

A REFERENCE IMPLEMENTATION for benchmarks (host/cli/benches/pipeline.rs), written in the
style of the upstream Python connector -- requests, paging with `offset`, cell values
stringified where they are not scalars, pyarrow, `deltalake.write_deltalake` -- and NOT the
upstream code. It does what a user would write by hand, with no sandbox, no limits and the
token in the process.

    AIRTABLE_TOKEN=pat... python3 benches/airtable_to_delta.py \
        --base-url http://127.0.0.1:8787 --base-id appProductLaunch \
        --table "SKU Candidates" --out /tmp/sku --mode upsert --commit-rows 50000

The last line of stdout is a JSON summary: rows, commits, requests, seconds, and
read_convert_cpu_s: this thread's CPU in parsing the pages' JSON and building their Arrow
tables, with the HTTP exchanges (requests' socket reads and HTTP parsing) and the Delta writes
left out: what weir's `read_path` bench counts of weir, whose HTTP client runs on other threads.
Needs: requests, pyarrow, deltalake (see requirements-test.txt).
"""

import argparse
import json
import os
import re
import sys
import time

import pyarrow as pa
import requests
from deltalake import DeltaTable, write_deltalake

DOUBLE = {"number", "currency", "percent", "duration"}
LONG = {"autoNumber", "count", "rating"}
BOOL = {"checkbox"}


def snake(name, taken):
    """Delta rejects spaces and punctuation in column names without column mapping."""
    base = re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower() or "field"
    out, n = base, 2
    while out in taken:
        out, n = f"{base}_{n}", n + 1
    taken.add(out)
    return out


class Airtable:
    def __init__(self, base_url, base_id, token):
        self.base_url = base_url.rstrip("/")
        self.base_id = base_id
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.requests = 0
        self.http_cpu = 0.0  # this thread's CPU inside requests' exchanges

    def get(self, path, params=None):
        while True:
            self.requests += 1
            t0 = time.thread_time()
            r = self.http.get(f"{self.base_url}{path}", params=params, timeout=30)
            self.http_cpu += time.thread_time() - t0
            if r.status_code == 429:
                time.sleep(30)  # Airtable's penalty after a 429
                continue
            r.raise_for_status()
            return r.json()

    def fields(self, table):
        meta = self.get(f"/v0/meta/bases/{self.base_id}/tables")
        for t in meta["tables"]:
            if table in (t["id"], t["name"]):
                return t["fields"]
        sys.exit(f"table {table!r} not found")

    def pages(self, table, page_size=100):
        params = {"pageSize": page_size}
        while True:
            body = self.get(f"/v0/{self.base_id}/{requests.utils.quote(table, safe='')}", params)
            yield body["records"]
            if "offset" not in body:
                return
            params["offset"] = body["offset"]


def schema_and_cells(fields):
    taken = {"id", "created_time"}
    columns = [(f["name"], snake(f["name"], taken), f["type"]) for f in fields]
    arrow = [pa.field("id", pa.string(), nullable=False), pa.field("created_time", pa.string())]
    for _, col, ftype in columns:
        t = pa.float64() if ftype in DOUBLE else pa.int64() if ftype in LONG else pa.bool_() if ftype in BOOL else pa.string()
        arrow.append(pa.field(col, t))
    return pa.schema(arrow), columns


def cell(value, ftype):
    if value is None:
        return False if ftype in BOOL else None
    if ftype in DOUBLE:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if ftype in LONG:
        return int(value) if isinstance(value, int) and not isinstance(value, bool) else None
    if ftype in BOOL:
        return value is True
    if isinstance(value, (dict, list)):
        return json.dumps(value)  # as the upstream PR does with thumbnails and objects
    return str(value)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", default="https://api.airtable.com")
    p.add_argument("--base-id", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--mode", choices=["upsert", "append"], default="upsert")
    p.add_argument("--commit-rows", type=int, default=50_000)
    args = p.parse_args()

    started = time.monotonic()
    api = Airtable(args.base_url, args.base_id, os.environ["AIRTABLE_TOKEN"])
    schema, columns = schema_and_cells(api.fields(args.table))
    rows, commits, pending = 0, 0, []
    read_cpu = 0.0

    def commit():
        nonlocal commits, read_cpu
        t0 = time.thread_time()
        batch = pa.Table.from_pylist(pending, schema=schema)
        read_cpu += time.thread_time() - t0
        if args.mode == "append" or commits == 0:
            write_deltalake(args.out, batch, mode="append")
        else:
            (
                DeltaTable(args.out)
                .merge(source=batch, predicate="t.id = s.id", source_alias="s", target_alias="t")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute()
            )
        commits += 1
        pending.clear()

    pages = api.pages(args.table)
    http_before = api.http_cpu  # the metadata request is not read + convert either
    while True:
        t0 = time.thread_time()
        records = next(pages, None)
        if records is None:
            read_cpu += time.thread_time() - t0
            break
        for r in records:
            f = r.get("fields", {})
            row = {"id": r["id"], "created_time": r.get("createdTime")}
            for name, col, ftype in columns:
                row[col] = cell(f.get(name), ftype)
            pending.append(row)
        rows += len(records)
        read_cpu += time.thread_time() - t0
        if len(pending) >= args.commit_rows:
            commit()
    if pending or commits == 0:
        commit()
    read_cpu -= api.http_cpu - http_before
    print(json.dumps({"rows": rows, "commits": commits, "requests": api.requests,
                      "seconds": round(time.monotonic() - started, 3), "read_convert_cpu_s": round(read_cpu, 3)}))


if __name__ == "__main__":
    main()
