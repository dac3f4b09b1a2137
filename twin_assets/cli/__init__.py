"""`twin`: what a person does by hand. Dagster's own CLI and UI stay the way to run and inspect assets.

Heavy libraries are imported inside the commands that use them, so `twin --help` answers at once.
"""

import click

from twin_assets.cli import collection, datasets, models, serve, training

# (module, class) of a store's failure -> what to put before its message (warehouse, vector store and
# registry errors say which store already)
STORE_ERRORS = {
    ("twin_resources.warehouse", "WarehouseError"): "", ("twin_resources.vector_store", "VectorStoreError"): "",
    ("twin_resources.domain.models", "RegistryError"): "",
    ("sqlite3", "DatabaseError"): "the embedded warehouse cannot be read (is a file under TWIN_HOME/warehouse damaged?): ",
    ("pymongo.errors", "PyMongoError"): "MongoDB: ",
}


class TwinGroup(click.Group):
    """Failures of the stores reach a person as one line naming the store, not as a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as error:
            for kind in type(error).__mro__:
                prefix = STORE_ERRORS.get((kind.__module__, kind.__name__))
                if prefix is not None:
                    raise click.ClickException(prefix + (" ".join(str(error).split()) or kind.__name__)) from None
            raise


@click.group(cls=TwinGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """LLM Twin: learn one person's writing voice from their own writing."""


for command in (*collection.COMMANDS, *datasets.COMMANDS, *models.COMMANDS, *serve.COMMANDS, *training.COMMANDS):
    main.add_command(command)

if __name__ == "__main__":
    main()
