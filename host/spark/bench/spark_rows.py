#!/usr/bin/env python3
"""Rows/s of one Airtable table through Spark, side by side: weir's `lakeflow_connect` against a
plain Python data source written the way upstream's is (requests, dicts, `Row`s built value by
value), on the same simulator. Figures are printed, never asserted; see BENCHMARKS.md.

    weir sim airtable --port 8787 --no-rate-limit --rows 200000 --table "SKU Candidates" &
    python host/spark/bench/spark_rows.py --sim-url http://127.0.0.1:8787 \\
        --airtable-wasm target/release/build/weir-artifacts-*/out/airtable.wasm

The bundled Airtable manifest paces requests at Airtable's 5 per second per base; to measure weir
rather than the pacing, the bench repackages the component with the manifest's [[rate_limits]]
removed (as host/cli/benches/pipeline.rs does). Needs pyspark, pyarrow, requests and this package.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import requests
from pyspark.sql import Row, SparkSession
from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    LongType,
    StructType,
    TimestampType,
)

SECTION = b"lakeflow-manifest"


def _leb(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _section(manifest: str) -> bytes:
    payload = _leb(len(SECTION)) + SECTION + manifest.encode()
    return b"\x00" + _leb(len(payload)) + payload


def unpaced(component: Path, manifest: Path, out: Path) -> Path:
    """The component with its manifest's [[rate_limits]] tables removed."""
    text = manifest.read_text()
    data = component.read_bytes()
    trailer = _section(text)
    if not data.endswith(trailer):
        sys.exit(f"{component} does not end with the manifest {manifest}")
    stripped = re.sub(r"\[\[rate_limits\]\]\n(?:(?!\[).*\n)*", "", text)
    out.write_bytes(data[: -len(trailer)] + _section(stripped))
    return out


def parse_value(value: Any, data_type: DataType) -> Any:
    """A JSON value as the schema's Python type, the way upstream's framework converts records."""
    if value is None:
        return None
    if isinstance(data_type, StructType):
        value = value if isinstance(value, dict) else {}
        return Row(**{f.name: parse_value(value.get(f.name), f.dataType) for f in data_type.fields})
    if isinstance(data_type, ArrayType):
        items = value if isinstance(value, list) else [value]
        return [parse_value(v, data_type.elementType) for v in items]
    if isinstance(data_type, LongType):
        return int(value) if isinstance(value, (int, float)) else None
    if isinstance(data_type, DoubleType):
        return float(value) if isinstance(value, (int, float)) else None
    if isinstance(data_type, DecimalType):
        return Decimal(str(value)).quantize(Decimal(1).scaleb(-data_type.scale)) if isinstance(value, (int, float)) else None
    if isinstance(data_type, BooleanType):
        return bool(value)
    if isinstance(data_type, TimestampType):
        return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if isinstance(data_type, DateType):
        return datetime.date.fromisoformat(str(value)[:10])
    return value if isinstance(value, str) else str(value)


class PlainReader(DataSourceReader):
    def __init__(self, options: dict[str, str], schema: StructType) -> None:
        self.options = options
        self.schema = schema

    def partitions(self) -> list[InputPartition]:
        return [InputPartition(0)]

    def read(self, partition: InputPartition) -> Iterator[Row]:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.options['bearer_token']}"
        url = f"{self.options['base_url']}/v0/{self.options['base_id']}/{self.options['tablename']}"
        names = {f.name: f.metadata.get("airtable_field_name", f.name) for f in self.schema.fields}
        offset = None
        while True:
            params = {"pageSize": "100", **({"offset": offset} if offset else {})}
            page = session.get(url, params=params, timeout=30).json()
            for record in page["records"]:
                fields = {**record["fields"], "id": record["id"], "created_time": record["createdTime"]}
                yield Row(**{f.name: parse_value(fields.get(names[f.name]), f.dataType) for f in self.schema.fields})
            offset = page.get("offset")
            if not offset:
                return


class PlainAirtable(DataSource):
    @classmethod
    def name(cls) -> str:
        return "plain_airtable"

    def reader(self, schema: StructType) -> DataSourceReader:
        return PlainReader(dict(self.options), schema)


def tree_usage() -> tuple[float, float]:
    """CPU seconds (user + system, reaped children's included) of this process and all it started
    (the JVM, Spark's Python workers), and the sum of their peak RSS in MiB: rusage would see
    only this process, since it never waits for the JVM."""
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            stats[int(entry.name)] = text[text.rindex(")") + 2 :].split()
    tree, grew = {os.getpid()}, True
    while grew:
        grew = False
        for pid, fields in stats.items():
            if pid not in tree and int(fields[1]) in tree:
                tree.add(pid)
                grew = True
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = sum(sum(int(f) for f in stats[pid][11:15]) for pid in tree if pid in stats) / ticks
    peak = 0
    for pid in tree:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        peak += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
    return cpu, peak / 1024


def timed(label: str, run: Any, rows: int) -> None:
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    print(f"{label:<44} {rows:>9,} rows {seconds:8.1f} s {rows / seconds:>10,.0f} rows/s", flush=True)


def main() -> None:
    here = Path(__file__).resolve().parent
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--sim-url", required=True)
    args.add_argument("--token", default="patWeirSim.0123456789abcdef0123456789abcdef")
    args.add_argument("--base", default="appProductLaunch")
    args.add_argument("--table", default="SKU Candidates")
    args.add_argument("--airtable-wasm", required=True, type=Path, help="the packaged airtable.wasm of a build")
    args.add_argument("--manifest", type=Path, default=here.parents[2] / "plugins/airtable/manifest.toml")
    args.add_argument(
        "--only-weir",
        action="store_true",
        help="read with weir's source alone, once (no counting pass), and end with a JSON line: rows, "
        "seconds, and the CPU and summed peak RSS of every process of the run (the JVM's start included)",
    )
    opts = args.parse_args()

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    spark.dataSource.register(PlainAirtable)
    with tempfile.TemporaryDirectory() as tmp:
        wasm = unpaced(opts.airtable_wasm, opts.manifest, Path(tmp) / "airtable-unpaced.wasm")
        connection = {
            "bearer_token": opts.token,
            "base_id": opts.base,
            "base_url": opts.sim_url,
            "allow_loopback": "true",
        }
        # The repackaged component is unsigned: the bench accepts it as such, as a test would.
        weir = spark.read.format("lakeflow_connect").options(
            sourceName=str(wasm), tableName=opts.table, allow_unsigned="true", **connection
        )
        if opts.only_weir:
            # One pass: count() pulls every batch through the source (a Python data source reads
            # whole rows whatever the query needs).
            started = time.perf_counter()
            rows = weir.load().count()
            seconds = time.perf_counter() - started
            cpu, rss = tree_usage()
            summary = {"rows": rows, "seconds": round(seconds, 3), "cpu_s": round(cpu, 2), "peak_rss_mib": round(rss)}
            print(json.dumps(summary), flush=True)
            spark.stop()
            return
        schema = weir.load().schema
        rows = weir.load().count()
        plain = spark.read.format("plain_airtable").schema(schema).options(tableName=opts.table, **connection)
        print(f"table {opts.table!r}, {len(schema.fields)} columns; Spark local[2]; noop sink", flush=True)
        timed("weir lakeflow_connect (pyarrow batches)", lambda: weir.load().write.format("noop").mode("overwrite").save(), rows)
        timed("plain Python source (requests, dicts, Rows)", lambda: plain.load().write.format("noop").mode("overwrite").save(), rows)
    spark.stop()


if __name__ == "__main__":
    main()
