"""Airtable into bronze_* streaming tables through lakeflow_connect, upstream-style."""

import json
import re

from pyspark import pipelines as dp
from pyspark.sql import DataFrame, SparkSession

spark = SparkSession.active()
CONNECTION = spark.conf.get("spark.weir.example.connection", "airtable")
TABLES = json.loads(spark.conf.get("spark.weir.example.tables", '["Vendors"]'))
AUTO_CDC = spark.conf.get("spark.weir.example.autoCdc", "false") == "true"


def source(table: str) -> DataFrame:
    """A stream of one source table; the connection's options are injected (or read from
    $WEIR_CONNECTIONS outside Databricks)."""
    return (
        spark.readStream.format("lakeflow_connect")
        .option("databricks.connection", CONNECTION)
        .option("tableName", table)
        .load()
    )


metadata = {
    row["tableName"]: row
    for row in spark.read.format("lakeflow_connect")
    .option("databricks.connection", CONNECTION)
    .option("tableName", "_community_table_metadata")
    .option("tableNameList", json.dumps(TABLES))
    .load()
    .collect()
}


def ingest(table: str) -> None:
    meta = metadata[table]
    destination = "bronze_" + re.sub(r"[^0-9a-z]+", "_", table.lower()).strip("_")
    dp.create_streaming_table(destination)
    if AUTO_CDC and meta["ingestion_type"] in ("cdc", "cdc_with_deletes"):
        view = f"source_{destination}"
        dp.temporary_view(name=view)(lambda: source(table))
        dp.create_auto_cdc_flow(
            target=destination,
            source=view,
            keys=list(meta["primary_keys"]),
            sequence_by=meta["cursor_field"],
            stored_as_scd_type=1,
        )
    else:
        dp.append_flow(target=destination, name=f"{destination}_append")(lambda: source(table))


for name in TABLES:
    ingest(name)
