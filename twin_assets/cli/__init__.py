"""`twin`: what a person does by hand. Dagster's own CLI and UI stay the way to run and inspect assets.

Heavy libraries are imported inside the commands that use them, so `twin --help` answers at once.
"""

import click

from twin_assets.cli import collection, models, serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """LLM Twin: learn one person's writing voice from their own writing."""


for command in (*collection.COMMANDS, *models.COMMANDS, *serve.COMMANDS):
    main.add_command(command)

if __name__ == "__main__":
    main()
