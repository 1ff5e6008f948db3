"""The data source classes: Spark's side of the contract. The work is in ``_native`` (Rust)."""

from __future__ import annotations

import json
from typing import Any, Iterator, Mapping, Sequence

import pyarrow as pa
from pyspark.errors import PySparkNotImplementedError
from pyspark.sql.datasource import (
    DataSource,
    DataSourceReader,
    DataSourceStreamReader,
    InputPartition,
    SimpleDataSourceStreamReader,
)
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.streaming.datasource import ReadLimit, SupportsTriggerAvailableNow
from pyspark.sql.types import ArrayType, StringType, StructField, StructType

from . import _native

FORMAT = "lakeflow_connect"

METADATA_TABLE, NAMESPACES_TABLE, TABLES_TABLE = _native.VIRTUAL_TABLES

#: The schemas of upstream's virtual tables.
VIRTUAL_SCHEMAS: dict[str, StructType] = {
    METADATA_TABLE: StructType(
        [
            StructField("tableName", StringType(), False),
            StructField("primary_keys", ArrayType(StringType()), True),
            StructField("cursor_field", StringType(), True),
            StructField("ingestion_type", StringType(), True),
        ]
    ),
    NAMESPACES_TABLE: StructType([StructField("namespace", ArrayType(StringType()), False)]),
    TABLES_TABLE: StructType(
        [
            StructField("namespace", ArrayType(StringType()), False),
            StructField("tableName", StringType(), False),
        ]
    ),
}

# A stream's offset in Spark's checkpoint is the connector's own offset under "offset"
# (None before the first page), so that a checkpoint reads as the connector wrote it.
_START: dict[str, Any] = {"offset": None}


def _to_spark(offset: str | None) -> dict[str, Any]:
    return {"offset": None if offset is None else json.loads(offset)}


def _to_connector(offset: Mapping[str, Any]) -> str | None:
    value = offset.get("offset")
    return None if value is None else json.dumps(value)


def _arrow(schema: StructType) -> pa.Schema:
    """The Arrow schema Spark checks every batch against (pyspark 4.2+)."""
    return to_arrow_schema(schema, timezone="UTC")


class Partition(InputPartition):
    """One connector partition (None: the whole table) and its share of the rate budgets."""

    def __init__(self, descriptor: str | None, share: float) -> None:
        super().__init__(descriptor)
        self.descriptor = descriptor
        self.share = share


def _shared(descriptors: Sequence[str]) -> list[InputPartition]:
    """Partitions that run at once split the connector's rate budgets evenly."""
    share = 1.0 / max(1, len(descriptors))
    return [Partition(d, share) for d in descriptors]


class LakeflowConnect(DataSource):
    """``spark.read.format("lakeflow_connect")``: a Lakeflow community connector, sandboxed.

    The options are resolved once, here, on the driver: a bad option, connection or connector
    fails now, with :class:`OptionsError`. ``self.options`` keeps the options with every secret
    parameter's value masked; the secrets travel to the workers inside the plan only.
    """

    def __init__(self, options: Mapping[str, str]) -> None:
        self._plan = _native.Plan(dict(options))
        secret = {name.lower() for name in self._plan.secret_parameters}
        super().__init__({k: ("<redacted>" if k.lower() in secret else v) for k, v in options.items()})

    @classmethod
    def name(cls) -> str:
        return FORMAT

    def schema(self) -> StructType:
        table = self._plan.table
        if table in VIRTUAL_SCHEMAS:
            return VIRTUAL_SCHEMAS[table]
        return StructType.fromJson(json.loads(self._plan.schema_json()))

    def reader(self, schema: StructType) -> DataSourceReader:
        return BatchReader(self._plan, schema)

    def streamReader(self, schema: StructType) -> DataSourceStreamReader:
        if self._plan.is_virtual:
            raise _native.OptionsError(f"lakeflow_connect: {self._plan.table} is a batch table; read it with spark.read")
        if self._plan.partitioned_stream:
            return PartitionedStreamReader(self._plan, schema)
        # Spark falls back to simpleStreamReader() on this error.
        raise PySparkNotImplementedError(errorClass="NOT_IMPLEMENTED", messageParameters={"feature": "streamReader"})

    def simpleStreamReader(self, schema: StructType) -> SimpleDataSourceStreamReader:
        return StreamReader(self._plan, schema)


class BatchReader(DataSourceReader):
    """A whole table: one Spark partition per connector partition, or one for the table."""

    def __init__(self, plan: _native.Plan, schema: StructType) -> None:
        self._plan = plan
        self._schema = schema

    def partitions(self) -> Sequence[InputPartition]:
        if self._plan.partitioned:
            return _shared(self._plan.partitions())
        return [Partition(None, 1.0)]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        if self._plan.is_virtual:
            yield _virtual(self._plan, self._schema)
            return
        assert isinstance(partition, Partition)
        yield from self._plan.read(partition.descriptor, self._schema.json(), _arrow(self._schema), partition.share)


def _virtual(plan: _native.Plan, schema: StructType) -> pa.RecordBatch:
    if plan.table == METADATA_TABLE:
        keys = ("tableName", "primary_keys", "cursor_field", "ingestion_type")
        rows = [dict(zip(keys, row)) for row in plan.metadata_rows()]
    elif plan.table == NAMESPACES_TABLE:
        rows = [{"namespace": ns} for ns in plan.namespace_rows()]
    else:
        rows = [{"namespace": ns, "tableName": t} for ns, t in plan.table_rows()]
    return pa.RecordBatch.from_pylist(rows, schema=_arrow(schema))


class StreamReader(SimpleDataSourceStreamReader, SupportsTriggerAvailableNow):
    """A table read in order on the driver, a bounded number of pages per micro-batch.

    Under ``Trigger.AvailableNow`` the stream stops at the first micro-batch that catches up:
    a listing the connector started later is never begun.
    """

    def __init__(self, plan: _native.Plan, schema: StructType) -> None:
        self._plan = plan
        self._schema = schema
        self._available_now = False
        self._caught_up = False

    def initialOffset(self) -> dict[str, Any]:
        return dict(_START)

    def read(self, start: dict[str, Any]) -> tuple[Iterator[pa.RecordBatch], dict[str, Any]]:
        if self._caught_up:
            return iter(()), start
        batches, end, done = self._plan.read_micro_batch(
            _to_connector(start), self._schema.json(), _arrow(self._schema), None
        )
        self._caught_up = done and self._available_now
        return iter(batches), (start if end is None else _to_spark(end))

    def readBetweenOffsets(self, start: dict[str, Any], end: dict[str, Any]) -> Iterator[pa.RecordBatch]:
        batches, _, _ = self._plan.read_micro_batch(
            _to_connector(start), self._schema.json(), _arrow(self._schema), _to_connector(end)
        )
        return iter(batches)

    def prepareForTriggerAvailableNow(self) -> None:
        self._available_now = True

    def commit(self, end: dict[str, Any]) -> None:
        pass


class PartitionedStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """A connector's partitioned stream: offsets from ``latest-offset``, partitions read on the
    executors. Under ``Trigger.AvailableNow`` the first latest offset is the last."""

    def __init__(self, plan: _native.Plan, schema: StructType) -> None:
        self._plan = plan
        self._schema = schema
        self._available_now = False
        self._target: dict[str, Any] | None = None

    def initialOffset(self) -> dict[str, Any]:
        return dict(_START)

    def latestOffset(self, start: dict[str, Any], limit: ReadLimit) -> dict[str, Any]:
        if self._target is not None:
            return self._target
        latest = _to_spark(self._plan.latest_offset(_to_connector(start)))
        if self._available_now:
            self._target = latest
        return latest

    def prepareForTriggerAvailableNow(self) -> None:
        self._available_now = True

    def partitions(self, start: dict[str, Any], end: dict[str, Any]) -> Sequence[InputPartition]:
        end_offset = _to_connector(end)
        if end_offset is None:
            return []
        return _shared(self._plan.stream_partitions(_to_connector(start), end_offset))

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        assert isinstance(partition, Partition)
        yield from self._plan.read(partition.descriptor, self._schema.json(), _arrow(self._schema), partition.share)

    def commit(self, end: dict[str, Any]) -> None:
        pass
