"""The Spark data source ``lakeflow_connect``, run by weir.

Lakeflow community connectors as sandboxed WebAssembly components: the connector reaches only
the origins its manifest names and never sees a secret; the weir runtime (Rust, in this
package's extension) pages through the source and hands Spark Arrow batches.

Installed, it registers itself: in a new ``SparkSession``, ``spark.read.format("lakeflow_connect")``
works with no call (pyspark registers the ``DefaultSource`` of installed ``pyspark_*`` modules).
``register(spark)`` does the same by hand::

    df = (spark.read.format("lakeflow_connect")
          .option("sourceName", "airtable")            # bundled, or a path to a .wasm
          .option("bearer_token", token)               # kept by the host, never in the connector
          .option("base_id", "appSaRcgA5UCGoRg5")
          .option("tableName", "Vendors")
          .load())
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._native import (
    BUNDLED,
    AuthenticationError,
    LakeflowConnectError,
    LimitError,
    OptionsError,
    SourceError,
    UnknownTableError,
)
from .datasource import FORMAT, LakeflowConnect

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: What pyspark looks for in an installed ``pyspark_*`` module.
DefaultSource = LakeflowConnect


def register(spark: SparkSession) -> None:
    """Registers the data source ``lakeflow_connect`` with ``spark`` (normally automatic)."""
    spark.dataSource.register(LakeflowConnect)


__all__ = [
    "BUNDLED",
    "FORMAT",
    "AuthenticationError",
    "DefaultSource",
    "LakeflowConnect",
    "LakeflowConnectError",
    "LimitError",
    "OptionsError",
    "SourceError",
    "UnknownTableError",
    "register",
]
