"""Step outputs as JSON at the staging URI, keyed by asset and partition: any process can load a step's inputs."""

from dagster import ConfigurableIOManager, InputContext, OutputContext

import ragindex.build  # noqa: F401 - registers the step records
from ragindex.step_output import StepOutput
from ragindex.storage import JsonStore


def _key(context: InputContext | OutputContext) -> str:
    asset = "/".join(context.asset_key.path)
    partition = context.asset_partition_key if context.has_asset_partitions else "all"
    return f"_outputs/{asset}/{partition.replace('|', '/')}.json"


class StepOutputIOManager(ConfigurableIOManager):
    """Writes each step's record (a `StepOutput` or plain JSON value) under `<uri>/_outputs/<asset>/<source>/<table>`;
    the data itself lives in the staging and index tables the record names."""

    uri: str

    def handle_output(self, context: OutputContext, obj) -> None:
        value = obj.to_json() if isinstance(obj, StepOutput) else {"kind": "json", "value": obj}
        context.add_output_metadata({"output_uri": JsonStore(self.uri).write(_key(context), value)})

    def load_input(self, context: InputContext):
        data = JsonStore(self.uri).read(_key(context))
        if data is None:
            raise FileNotFoundError(f"no stored output of {context.asset_key.to_user_string()} for partition "
                                    f"{context.asset_partition_key}: materialize it first")
        return data["value"] if data["kind"] == "json" else StepOutput.from_json(data)
