"""Model versions through the graph: a model asset outputs a `ModelVersion`; this IO manager stores its
version id beside the registry and hands the version itself to the assets downstream. So an export or a
fine-tune receives exactly the version its upstream run produced, and Dagster's lineage is the model's."""

import typing

import dagster as dg

from twin_resources.domain.models import ModelVersion, RegistryError
from twin_resources.model_registry import ModelRegistry


class ModelVersionIOManager(dg.ConfigurableIOManager):
    model_registry: dg.ResourceDependency[ModelRegistry]

    def handle_output(self, context: dg.OutputContext, obj: ModelVersion) -> None:
        if not isinstance(obj, ModelVersion):
            raise TypeError(f"{context.asset_key.to_user_string()} must output a ModelVersion, not {type(obj).__name__}")
        # the asset's own partition, not the run's: an unpartitioned model built in an author's run is everyone's
        partition = context.asset_partition_key if context.has_asset_partitions else None
        self.model_registry.registry.record_output(context.asset_key.to_python_identifier(), partition, obj.version)

    def load_input(self, context: dg.InputContext) -> ModelVersion | dict[str, ModelVersion]:
        if typing.get_origin(context.dagster_type.typing_type) is dict:  # every partition (e.g. every author's)
            return self._every_partition(context)
        partition = context.asset_partition_key if context.has_asset_partitions else None
        try:
            return self.model_registry.registry.output_of(context.asset_key.to_python_identifier(), partition)
        except RegistryError as error:
            raise dg.Failure(f"{error}: materialize {context.asset_key.to_user_string()} first") from None

    def _every_partition(self, context: dg.InputContext) -> dict[str, ModelVersion]:
        """The version of each partition materialized so far; one not yet built is left out."""
        versions = {}
        for partition in context.asset_partition_keys if context.has_asset_partitions else []:
            try:
                versions[partition] = self.model_registry.registry.output_of(
                    context.asset_key.to_python_identifier(), partition)
            except RegistryError:
                continue
        return versions
