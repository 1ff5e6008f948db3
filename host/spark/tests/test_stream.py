"""Streams: offsets in Spark's checkpoint, Trigger.AvailableNow, bounded micro-batches, restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession

TABLE = "Launch Milestones"


def _run(df: DataFrame, out: Path, checkpoint: Path) -> list[dict[str, Any]]:
    """Runs the stream with availableNow into Parquet; returns the progress of each micro-batch
    that read rows."""
    query = (
        df.writeStream.format("parquet")
        .option("path", str(out))
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination(300)
    assert not query.isActive, "availableNow must stop by itself"
    assert query.exception() is None, query.exception()
    return [p for p in query.recentProgress if p["numInputRows"] > 0]


def _files(out: Path) -> set[str]:
    return {str(p) for p in out.glob("*.parquet")}


def test_available_now_reads_everything_then_a_restart_reads_only_what_changed(
    spark: SparkSession, sim: Any, tmp_path: Path
) -> None:
    # Ten records a page, each page checkpointable, two pages a micro-batch.
    options = sim.options(
        tableName=TABLE, page_size="10", checkpoint_records="10", lookback_seconds="0"
    )
    options["weir.maxPagesPerTrigger"] = "2"
    stream = spark.readStream.format("lakeflow_connect").options(**options).load()
    out, checkpoint = tmp_path / "out", tmp_path / "checkpoint"
    batches = _run(stream, out, checkpoint)
    first = _files(out)
    everything = spark.read.format("lakeflow_connect").options(**sim.options(tableName=TABLE)).load()
    ids = sorted(r["id"] for r in everything.collect())
    # Every record arrives once, though micro-batches end between records that share one cursor
    # value (the connector names those it returned, and its next listing passes over them).
    assert sorted(r["id"] for r in spark.read.parquet(*first).collect()) == ids
    assert len(ids) > 20
    # Bounded: a micro-batch ends at the first checkpoint past two pages. A chunk returns ten rows,
    # but the first page of a chunk that passes over the records its boundary returned has fewer
    # and is no checkpoint, so a micro-batch holds at most three pages.
    assert len(batches) >= 2 and all(b["numInputRows"] <= 30 for b in batches)

    table = sim.request("GET", f"/v0/{sim.base}/{TABLE}?pageSize=2")["records"]
    changed = [{"id": r["id"], "fields": {"Notes": f"changed by the test {i}"}} for i, r in enumerate(table)]
    sim.request("PATCH", f"/v0/{sim.base}/{TABLE}", {"records": changed})
    created = sim.request("POST", f"/v0/{sim.base}/{TABLE}", {"records": [{"fields": {"Milestone": "Added by the test"}}]})

    _run(stream, out, checkpoint)
    rows = spark.read.parquet(*(_files(out) - first)).collect()
    expected = {r["id"] for r in table} | {r["id"] for r in created["records"]}
    assert sorted(r["id"] for r in rows) == sorted(expected)
    notes = {r["id"]: r["notes"] for r in rows}
    for i, r in enumerate(table):
        assert notes[r["id"]] == f"changed by the test {i}"


def test_a_partitioned_stream_resumes_every_shard_from_the_checkpoint(
    spark: SparkSession, shards_wasm: str, tmp_path: Path
) -> None:
    def stream(rows: int) -> DataFrame:
        return (
            spark.readStream.format("lakeflow_connect")
            .option("sourceName", shards_wasm)
            .option("allow_unsigned", "true")
            .option("tableName", "events")
            .option("partitions", "3")
            .option("rows", str(rows))
            .load()
        )

    out, checkpoint = tmp_path / "out", tmp_path / "checkpoint"
    _run(stream(10), out, checkpoint)
    first = _files(out)
    assert spark.read.parquet(*first).count() == 30
    # The source grows: the rerun reads only the new rows of each shard.
    _run(stream(15), out, checkpoint)
    ids = sorted(r["id"] for r in spark.read.parquet(*(_files(out) - first)).collect())
    assert ids == sorted(f"s{s}-{n}" for s in range(3) for n in range(10, 15))
