"""The deployment the user's guide fought with: a fresh interpreter, real executor processes."""

from __future__ import annotations

import subprocess
import textwrap
from typing import Any


def test_a_fresh_interpreter_with_local_executors_needs_no_register_call_and_no_path_tricks(
    python: str, sim: Any, shards_wasm: str
) -> None:
    script = textwrap.dedent(
        f"""
        from pyspark.sql import SparkSession
        spark = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
        airtable = spark.read.format("lakeflow_connect").options(**{sim.options(tableName="Vendors")!r}).load()
        shards = (spark.read.format("lakeflow_connect").option("sourceName", {shards_wasm!r}).option("allow_unsigned", "true")
                  .option("tableName", "events").option("partitions", "4").option("rows", "25").load())
        print("rows", airtable.count(), shards.count(), shards.rdd.getNumPartitions())
        spark.stop()
        """
    )
    out = subprocess.run([python, "-c", script], capture_output=True, text=True, timeout=600)
    assert "ModuleNotFoundError" not in out.stdout + out.stderr
    assert out.returncode == 0, out.stderr
    assert "rows 10 100 4" in out.stdout, out.stdout
