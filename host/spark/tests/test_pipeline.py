"""The example declarative pipeline (examples/spark-pipeline), run by open-source `spark-pipelines`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from pyspark.sql import SparkSession


def test_the_example_pipeline_appends_each_table_into_a_streaming_table(
    sim: Any, spark: SparkSession, tmp_path: Path
) -> None:
    example = Path(__file__).parents[3] / "examples/spark-pipeline"
    root = tmp_path / "pipeline"
    shutil.copytree(example, root)
    spec = root / "spark-pipeline.yml"
    spec.write_text(spec.read_text().replace("file:///tmp/weir-airtable-bronze/storage", (tmp_path / "storage").as_uri()))
    connections = tmp_path / "connections.toml"
    connections.write_text(
        "[connections.airtable]\n"
        'connector = "airtable"\n'
        f'base_id = "{sim.base}"\nbase_url = "{sim.url}"\nbearer_token = "{sim.token}"\nallow_loopback = true\n'
    )
    cli = Path(sys.executable).parent / "spark-pipelines"
    # SPARK_TESTING: the local Spark Connect server takes a free port rather than 15002, which
    # another session on this machine may hold.
    env = {**os.environ, "WEIR_CONNECTIONS": str(connections), "SPARK_TESTING": "1"}
    out = subprocess.run(["bash", str(cli), "run"], cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Run is COMPLETED" in out.stdout + out.stderr
    for table, name in [("Vendors", "bronze_vendors"), ("Launch Milestones", "bronze_launch_milestones")]:
        source = spark.read.format("lakeflow_connect").options(**sim.options(tableName=table)).load()
        landed = pq.read_table(root / "spark-warehouse" / name)
        assert sorted(landed.column("id").to_pylist()) == sorted(r["id"] for r in source.collect())
