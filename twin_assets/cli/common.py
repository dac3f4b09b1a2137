"""What every `twin` command shares: the settings, the warehouse, and one-line failures."""

from collections.abc import Iterator
from contextlib import contextmanager

import click

from twin_resources.settings import SettingsError, TwinSettings, load_settings


def fail(message: str) -> None:
    """Exit non-zero with one line saying why."""
    raise click.ClickException(message)


def settings() -> TwinSettings:
    try:
        return load_settings()
    except SettingsError as error:
        raise click.ClickException(f"bad setting: {error}") from None


@contextmanager
def open_warehouse() -> Iterator:
    """The warehouse as the settings configure it; a one-line error when it cannot be opened."""
    from twin_resources.configured import warehouse_from_env

    settings()  # a bad setting is named before anything opens
    session = warehouse_from_env()
    try:
        warehouse = session.__enter__()
    except Exception as error:  # an unreachable server or an unwritable TWIN_HOME
        raise click.ClickException(f"cannot open the warehouse: {error}") from None
    try:
        yield warehouse
    finally:
        session.__exit__(None, None, None)


def require_author(warehouse, name: str):
    from twin_resources.warehouse import WarehouseError

    try:
        return warehouse.require_user(name)
    except WarehouseError as error:
        fail(str(error))


def authors_with_documents(warehouse, author_name: str | None) -> list:
    """The named author, or every author with at least one document."""
    if author_name:
        return [require_author(warehouse, author_name)]
    from twin_resources.domain.documents import Category

    with_documents = {d for category in Category for d in warehouse.distinct(category.value, "author_id")}
    return [user for user in warehouse.users() if user.id in with_documents]
