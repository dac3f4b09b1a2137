"""The feature store's collection names: shared by the pipeline that writes them and the code that reads them."""

from twin_resources.documents import Category


def cleaned_collection(category: Category) -> str:
    return f"cleaned_{category.value}"


def chunk_collection(category: Category) -> str:
    return f"embedded_{category.value}"
