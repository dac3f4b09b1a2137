"""A raw document cleaned for training and retrieval: markup, chrome and decoration gone, code kept as code."""

from twin_assets.features.cleaning import clean_code, clean_prose, drop_echoes_at_top, fenced_code, looks_binary
from twin_assets.features.repeated import RepeatedLines, line_keys
from twin_resources.domain.documents import Category, RawDocument, RepositoryFile
from twin_resources.domain.features import CleanedDocument, text_hash

# Bumped when cleaning changes, so every document is cleaned again once.
CLEANER_VERSION = "3"


def clean_document(raw: RawDocument) -> CleanedDocument:
    """One document cleaned on its own; lines repeated across the author's documents are still there
    (`without_repeated` takes them out)."""
    files: list[RepositoryFile] = []
    if raw.category is Category.REPOSITORIES:
        files = [RepositoryFile(path=f.path, text=clean_code(f.text)) for f in raw.content.files
                 if not looks_binary(f.text)]
        files = [f for f in files if f.text.strip()]
        title, subtitle = raw.content.name, None
        content = "\n\n".join(f"# {f.path}\n{f.text}" for f in files)
    else:
        title = raw.label
        subtitle = getattr(raw.content, "subtitle", None)
        body = clean_prose(raw.content.body, title=getattr(raw.content, "title", None))
        # Pages repeat their title and subtitle above the text; the document keeps them as fields.
        page_title = getattr(raw.content, "title", None) or ""
        bare_title = page_title.removesuffix(f" - {raw.author_full_name}").removeprefix(f"{raw.author_full_name} - ")
        body = drop_echoes_at_top(body, page_title, bare_title, subtitle and clean_prose(subtitle))
        content = body if not subtitle else f"{clean_prose(subtitle)}\n\n{body}"
    return CleanedDocument(
        id=raw.id, author_id=raw.author_id, author_name=raw.author_full_name, platform=raw.platform,
        link=raw.link, category=raw.category, title=title, subtitle=clean_prose(subtitle) if subtitle else "",
        content=content, files=files,
        source_hash=raw.content_hash, cleaner_version=CLEANER_VERSION, content_hash=text_hash(content),
        line_keys=line_keys(content, fenced_code(raw.content.body)) if raw.category is not Category.REPOSITORIES else [],
    )


def without_repeated(document: CleanedDocument, repeated: RepeatedLines) -> tuple[CleanedDocument, list[str]]:
    """The document without the author's repeated lines, and the lines that went."""
    content, removed = repeated.remove(document.content, document.line_keys)
    cleaned = document.model_copy(update={"content": content, "content_hash": text_hash(content),
                                          "removal_key": repeated.removal_key(document.line_keys),
                                          "removed_lines": len(removed)})
    return cleaned, removed
