"""Batch reads: every table as `weir preview` sees it, the virtual tables, partitions, options."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from typing import Any

import pytest
from conftest import TABLES
from pyspark.sql import SparkSession

import pyspark_lakeflow_connect


def _normal(value: Any) -> Any:
    """A Spark value as `weir preview --json` writes it: UTC timestamps with Z, dates as
    YYYY-MM-DD, numbers exact, nulls left out of objects."""
    if isinstance(value, datetime.datetime):
        text = value.astimezone(datetime.timezone.utc).replace(tzinfo=None).isoformat()
        return text + "Z"
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def _preview_rows(weir: Any, table: str) -> list[dict[str, Any]]:
    out = weir("preview", "-t", table, "--json", "--limit", "1000000")
    rows = [json.loads(line, parse_float=Decimal, parse_int=Decimal) for line in out.splitlines() if line]
    return sorted(rows, key=lambda r: r["id"])


@pytest.mark.parametrize("table", TABLES)
def test_a_batch_read_gives_every_row_with_the_values_and_types_of_weir_preview(
    spark: SparkSession, sim: Any, weir: Any, table: str
) -> None:
    df = spark.read.format("lakeflow_connect").options(**sim.options(tableName=table)).load()
    assert df.schema.jsonValue() == json.loads(weir("schema", "-t", table, "--json"))
    rows = sorted((_normal(r) for r in df.toArrow().to_pylist()), key=lambda r: r["id"])
    expected = _preview_rows(weir, table)
    assert len(rows) == len(expected) > 0
    for got, want in zip(rows, expected):
        assert got == want, f"{table}, record {want['id']}"


def test_the_metadata_virtual_table_gives_each_listed_table_in_order(spark: SparkSession, sim: Any, weir: Any) -> None:
    listed = ["Vendors", "SKU Candidates", "Packaging Tasks"]
    df = (
        spark.read.format("lakeflow_connect")
        .options(**sim.options())
        .option("tableName", "_community_table_metadata")
        .option("tableNameList", json.dumps(listed))
        .option("tableConfigs", json.dumps({"SKU Candidates": {"view": "Grid view"}}))
        .load()
    )
    rows = [r.asDict() for r in df.collect()]
    assert [r["tableName"] for r in rows] == listed
    for row in rows:
        expected = json.loads(weir("metadata", "-t", row["tableName"], "--json"))
        assert row["primary_keys"] == expected["primary_keys"]
        assert row["cursor_field"] == expected["cursor_field"]
        assert row["ingestion_type"] == expected["ingestion_type"]


def test_the_namespace_virtual_tables_follow_upstream(spark: SparkSession, sim: Any) -> None:
    def read(table: str, **options: str) -> list[dict[str, Any]]:
        reader = spark.read.format("lakeflow_connect").options(**sim.options(tableName=table, **options))
        return [r.asDict() for r in reader.load().collect()]

    # A connection scoped to one base keeps its tables at the root and has no namespaces below it.
    assert read("_community_namespaces") == []
    tables = read("_community_tables", namespace="[]")
    assert sorted(t["tableName"] for t in tables) == sorted(TABLES)
    assert all(t["namespace"] == [] for t in tables)
    # Without base_id, every base the token reads is a namespace.
    unscoped = sim.options(tableName="_community_namespaces")
    del unscoped["base_id"]
    namespaces = spark.read.format("lakeflow_connect").options(**unscoped).load().collect()
    assert [r["namespace"] for r in namespaces] == [[sim.base]]
    # Airtable has namespaces: listing tables needs one.
    with pytest.raises(Exception, match="option namespace is required"):
        read("_community_tables")


def test_a_partitioned_connector_reads_one_spark_partition_per_connector_partition(
    spark: SparkSession, shards_wasm: str
) -> None:
    df = (
        spark.read.format("lakeflow_connect")
        .option("sourceName", shards_wasm)
        .option("allow_unsigned", "true")
        .option("tableName", "events")
        .option("partitions", "3")
        .option("rows", "40")
        .option("page_rows", "7")
        .load()
    )
    assert df.rdd.getNumPartitions() == 3
    rows = df.collect()
    assert sorted(r["id"] for r in rows) == sorted(f"s{s}-{n}" for s in range(3) for n in range(40))
    assert {r["shard"] for r in rows} == {0, 1, 2}


def test_is_delete_flow_reads_the_deletes_whatever_its_case(spark: SparkSession, sim: Any) -> None:
    # Airtable's deletes end at once (they need webhooks); the flag must not reach the connector,
    # which refuses unknown table options.
    deletes = spark.read.format("lakeflow_connect").options(**sim.options(tableName="Vendors")).option("ISDELETEFLOW", "True")
    assert deletes.load().count() == 0
    assert spark.read.format("lakeflow_connect").options(**sim.options(tableName="Vendors")).load().count() > 0


def test_a_wrong_token_is_one_clean_authentication_error_that_never_shows_the_token(
    spark: SparkSession, sim: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    wrong = "patWRONG.0123456789secretsecretsecret"
    options = sim.options(tableName="Vendors", bearer_token=wrong)
    # On the driver: the schema call fails.
    with pytest.raises(Exception) as on_driver:
        spark.read.format("lakeflow_connect").options(**options).load()
    # In an executor: with the schema given, the first read fails.
    schema = spark.read.format("lakeflow_connect").options(**sim.options(tableName="Vendors")).load().schema
    with pytest.raises(Exception) as in_executor:
        spark.read.format("lakeflow_connect").schema(schema).options(**options).load().collect()
    captured = capfd.readouterr()
    for error, call in [(on_driver, "table-schema"), (in_executor, "read-table")]:
        text = str(error.value)
        assert "AuthenticationError" in text, text
        assert f'connector airtable, {call} on table "Vendors": authentication failed' in text, text
    for text in [str(on_driver.value), str(in_executor.value), captured.out, captured.err]:
        assert wrong not in text


def test_query_plans_never_show_the_token(spark: SparkSession, sim: Any, capfd: pytest.CaptureFixture[str]) -> None:
    df = spark.read.format("lakeflow_connect").options(**sim.options(tableName="Vendors")).load()
    for mode in ["simple", "extended", "formatted", "cost", "codegen"]:
        df.explain(mode)
    plans = capfd.readouterr().out
    assert "lakeflow_connect" in plans
    assert sim.token not in plans
    assert sim.token not in df._jdf.queryExecution().toString()


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"tableName": "Nope"}, "UnknownTableError", 'connector airtable, table-schema on table "Nope": unknown table'),
        ({"tableName": "Vendors", "colour": "red"}, "OptionsError", 'unknown table option "colour"'),
        ({"tableName": "Vendors", "weir.maxpages": "1"}, "OptionsError", "weir.maxPagesPerTrigger"),
        ({"tableName": "_community_everything"}, "OptionsError", "unknown virtual table"),
        ({"tableName": "Vendors", "sourceName": "nosuch"}, "OptionsError", "neither a bundled connector"),
    ],
)
def test_bad_options_and_unknown_tables_are_readable_errors(
    spark: SparkSession, sim: Any, options: dict[str, str], error: str, message: str
) -> None:
    with pytest.raises(Exception) as failed:
        spark.read.format("lakeflow_connect").options(**{**sim.options(), **options}).load().collect()
    text = str(failed.value)
    assert error in text and message in text, text


def test_register_is_there_for_sessions_that_did_not_pick_the_module_up(spark: SparkSession, sim: Any) -> None:
    pyspark_lakeflow_connect.register(spark)
    assert spark.read.format("lakeflow_connect").options(**sim.options(tableName="Vendors")).load().count() > 0
