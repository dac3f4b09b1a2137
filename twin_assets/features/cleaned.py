"""A raw document cleaned for training and retrieval: markup, chrome and decoration gone, code kept as code."""

from twin_assets.features.cleaning import clean_code, clean_prose, looks_binary
from twin_resources.domain.documents import Category, RawDocument, RepositoryFile
from twin_resources.domain.features import CleanedDocument, text_hash

# Bumped when cleaning changes, so every document is cleaned again once.
CLEANER_VERSION = "1"


def clean_document(raw: RawDocument) -> CleanedDocument:
    files: list[RepositoryFile] = []
    if raw.category is Category.REPOSITORIES:
        files = [RepositoryFile(path=f.path, text=clean_code(f.text)) for f in raw.content.files
                 if not looks_binary(f.text)]
        files = [f for f in files if f.text.strip()]
        title = raw.content.name
        content = "\n\n".join(f"# {f.path}\n{f.text}" for f in files)
    else:
        title = raw.label
        body = clean_prose(raw.content.body, title=getattr(raw.content, "title", None))
        subtitle = getattr(raw.content, "subtitle", None)
        content = body if not subtitle else f"{clean_prose(subtitle)}\n\n{body}"
    return CleanedDocument(
        id=raw.id, author_id=raw.author_id, author_name=raw.author_full_name, platform=raw.platform,
        link=raw.link, category=raw.category, title=title, content=content, files=files,
        source_hash=raw.content_hash, cleaner_version=CLEANER_VERSION, content_hash=text_hash(content),
    )
