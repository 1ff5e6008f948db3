"""Fixtures of the Spark suite: a local Spark session and the Airtable simulator that
`tests/pytest.rs` starts (its address and token come in the environment)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
from pyspark.sql import SparkSession

TABLES = ["SKU Candidates", "Launch Milestones", "Compliance Records", "Packaging Tasks", "Marketing Assets", "Vendors"]


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the suite through `cargo test -p weir-spark` (tests/pytest.rs)")
    return value


class SimAirtable:
    """The simulator: the read options of a connection to it, and writes through its API."""

    def __init__(self) -> None:
        self.url = _env("WEIR_SIM_URL")
        self.token = _env("WEIR_SIM_TOKEN")
        self.base = _env("WEIR_SIM_BASE")

    def options(self, **extra: str) -> dict[str, str]:
        """The options Unity Catalog would inject for the connection, plus loopback for the simulator."""
        return {
            "sourceName": "airtable",
            "bearer_token": self.token,
            "base_id": self.base,
            "base_url": self.url,
            "allow_loopback": "true",
            **extra,
        }

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}{urllib.parse.quote(path, safe='/?=&')}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as response:
            return json.load(response)


@pytest.fixture(scope="session")
def sim() -> SimAirtable:
    return SimAirtable()


@pytest.fixture(scope="session")
def weir(tmp_path_factory: pytest.TempPathFactory, sim: SimAirtable) -> Any:
    """Runs the `weir` command on a connection to the simulator; returns its stdout."""
    connections = tmp_path_factory.mktemp("weir") / "connections.toml"
    connections.write_text(
        "[connections.sim]\n"
        'connector = "airtable"\n'
        f'base_id = "{sim.base}"\nbase_url = "{sim.url}"\nbearer_token = "{sim.token}"\nallow_loopback = true\n'
    )

    def run(*args: str) -> str:
        out = subprocess.run(
            [_env("WEIR_BIN"), *args, "--connections", str(connections)], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    return run


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """A local Spark session with two executor threads; the data source registers itself."""
    session = (
        SparkSession.builder.master("local[2]")
        .appName("weir-spark-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def shards_wasm() -> str:
    """A contract-0.2 test component with a partitioned table `events`, as a .wasm path."""
    return _env("WEIR_SHARDS_WASM")


@pytest.fixture
def python() -> str:
    return sys.executable


@pytest.fixture
def here() -> Path:
    return Path(__file__).parent
