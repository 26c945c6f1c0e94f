"""One dynamic partition per source (never per document): runs, history and sensors are per source."""

from dagster import DynamicPartitionsDefinition

sources_partitions = DynamicPartitionsDefinition(name="sources")
