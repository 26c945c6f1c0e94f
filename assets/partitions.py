"""Partitions: one per (source, index table) — never per document. A green table (model change) is its own
partition, so the UI history of an index is about one table."""

from __future__ import annotations

from dataclasses import dataclass

from dagster import DynamicPartitionsDefinition, MultiPartitionKey, MultiPartitionsDefinition

sources = DynamicPartitionsDefinition(name="sources")
tables = DynamicPartitionsDefinition(name="tables")
build_partitions = MultiPartitionsDefinition({"source": sources, "table": tables})


@dataclass(frozen=True)
class BuildPartition:
    source: str
    table: str

    @classmethod
    def of(cls, context) -> BuildPartition:
        keys = context.partition_key.keys_by_dimension
        return cls(keys["source"], keys["table"])

    @property
    def key(self) -> MultiPartitionKey:
        return MultiPartitionKey({"source": self.source, "table": self.table})

    def register(self, instance) -> None:
        """Add the source and table as dynamic partitions if the instance lacks them."""
        for definition, name in ((sources, self.source), (tables, self.table)):
            if not instance.has_dynamic_partition(definition.name, name):
                instance.add_dynamic_partitions(definition.name, [name])
