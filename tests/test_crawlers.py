import csv
import io
import subprocess
import zipfile

import pytest

from tests.fixtures.site import BOILERPLATE
from twin_assets.collection.crawlers import CrawlerDispatcher, CrawlError
from twin_assets.collection.crawlers.git import GitCrawler
from twin_assets.collection.crawlers.linkedin_export import LinkedInExportCrawler
from twin_assets.collection.crawlers.web import WebCrawler, sniff_platform
from twin_resources.domain.documents import Category, UserDocument, normalize_link
from twin_resources.links import LinkKind, classify_link, register_links

AUTHOR = UserDocument.from_full_name("Ada Quill")


@pytest.mark.parametrize(("path", "platform", "subtitle"), [
    ("/substack/p/evals", "substack", "A subtitle under the title"),
    ("/medium/@ada/pipelines", "medium", "Medium subtitle"),
    ("/blog/voice.html", "blog", None),
])
def test_articles_keep_the_authors_text_and_lose_the_platform_around_it(http, site, path, platform, subtitle):
    [article] = WebCrawler(http).crawl(site.url(path), AUTHOR)
    body = article.content.body
    assert (article.category, article.platform, article.content.subtitle) == (Category.ARTICLES, platform, subtitle)
    assert "An opening paragraph that only the author wrote" in body
    assert "## A heading the author chose" in body
    assert "It keeps its full stop.\n" in body or body.count("\n\n") >= 2  # paragraphs survive
    assert 'def keep(code):\n    return "indentation"' in body
    assert not [phrase for phrase in BOILERPLATE if phrase.lower() in body.lower()]
    assert article.content.language == "en" and article.published_at.year == 2026


def test_a_linkedin_public_post_becomes_a_post(http, site):
    [post] = WebCrawler(http).crawl(site.url("/linkedin/posts/streaming"), AUTHOR)
    assert (post.category, post.platform) == (Category.POSTS, "linkedin")
    assert post.content.body == "We started streaming tokens.\n\nPeople forgive a slow answer that starts quickly."


@pytest.mark.parametrize(("path", "reason"), [
    ("/empty", "empty page"),
    ("/nav-only", "no main text found"),
    ("/status/404", "HTTP 404"),
    ("/drafts/secret", "robots.txt disallows"),
    ("/report.pdf", "not an HTML page"),
    ("/nul-bytes", "binary content, not a text page"),
])
def test_pages_without_storable_text_fail_with_their_reason(http, site, path, reason):
    with pytest.raises(CrawlError, match=reason):
        WebCrawler(http).crawl(site.url(path), AUTHOR)


def test_malformed_html_is_extracted_or_refused_never_crashes(http, site):
    try:
        [article] = WebCrawler(http).crawl(site.url("/malformed"), AUTHOR)
        assert "unclosed" in article.content.body
    except CrawlError as error:
        assert "malformed" in str(error) or "no main text" in str(error)


def test_a_charset_nobody_knows_is_read_as_the_web_reads_undeclared_pages(http, site):
    [article] = WebCrawler(http).crawl(site.url("/unknown-charset"), AUTHOR)
    assert article.content.title == "What makes a voice"


def test_a_page_without_a_charset_in_latin_1_keeps_its_accents(http, site):
    [article] = WebCrawler(http).crawl(site.url("/latin-1"), AUTHOR)
    assert article.content.title == "Café au lait à la crème"
    assert "français où l'été est chaud, déjà vue" in article.content.body


def test_platform_markers_identify_custom_domains():
    assert sniff_platform('<link href="https://substackcdn.com/x.css">', "https://newsletter.ada.dev/p/x") == "substack"
    assert sniff_platform('<meta property="al:android:package" content="com.medium.reader">', "https://ada.dev") == "medium"
    assert sniff_platform("<html></html>", "https://ada.medium.com/post") == "medium"
    assert sniff_platform("<html></html>", "https://ada.dev/post") == "blog"


def test_a_git_repository_keeps_text_files_verbatim_and_skips_the_rest(git_repository):
    [repository] = GitCrawler(max_file_bytes=100_000).crawl(str(git_repository), AUTHOR)
    files = {f.path: f.text for f in repository.content.files}
    assert repository.content.name == "ada-tools" and repository.platform == "git"
    assert sorted(files) == ["README.md", "src/core.py"]
    assert files["src/core.py"] == "def add(a, b):\n\tif a:\n        return a + b\n\n\n# trailing  \n"


def test_a_repository_that_fails_to_clone_is_a_crawl_error(tmp_path):
    (tmp_path / "not-a-repo.git").mkdir()
    with pytest.raises(CrawlError, match="git clone failed"):
        GitCrawler().crawl(str(tmp_path / "not-a-repo.git"), AUTHOR)


def write_shares(rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["Date", "ShareLink", "ShareCommentary", "SharedUrl", "MediaUrl", "Visibility"])
    writer.writerows(rows)
    return buffer.getvalue()


def test_a_linkedin_export_archive_yields_the_authors_posts(tmp_path):
    shares = write_shares([
        ["2026-01-02 10:00:00", "https://www.linkedin.com/feed/update/urn:li:share:1", 'Line one, with "quotes".\n\nLine two.', "", "", "PUBLIC"],
        ["2026-01-03 10:00:00", "https://www.linkedin.com/feed/update/urn:li:share:2", "", "https://x.dev", "", "PUBLIC"],
    ])
    archive = tmp_path / "Basic_LinkedInDataExport.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("Basic_LinkedInDataExport_01-01-2026/Shares.csv", shares)
    [post] = LinkedInExportCrawler().crawl(str(archive), AUTHOR)
    assert post.content.body == 'Line one, with "quotes".\n\nLine two.'
    assert post.link == "https://www.linkedin.com/feed/update/urn:li:share:1" and post.published_at.day == 2


@pytest.mark.parametrize("how", ["declared", "ratio", "streamed", "plain csv"])
def test_an_export_that_would_unpack_past_the_limit_is_refused_before_it_fills_memory(tmp_path, how):
    """A small zip holding a huge Shares.csv: by its declared size, its compression ratio, or (when the
    archive lies about both) by counting what comes out; a plain CSV by its size on disk."""
    shares = write_shares([["2026-01-02", "https://www.linkedin.com/feed/update/urn:li:share:1", "words", "", "", ""]])
    padded = shares + "x" * 4_000_000
    archive = tmp_path / "export.zip"
    if how == "plain csv":
        archive = tmp_path / "Shares.csv"
        archive.write_text(padded)
    else:
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
            zipped.writestr("Shares.csv", padded if how != "streamed" else shares)
        if how == "streamed":  # rewrite the member as a bomb whose header claims a small, plain file
            bomb = zipfile.ZipInfo("Shares.csv")
            bomb.compress_type = zipfile.ZIP_DEFLATED
            with zipfile.ZipFile(archive, "w") as zipped:
                with zipped.open(bomb, "w", force_zip64=False) as member:
                    for _ in range(40):
                        member.write(b"y" * 100_000)
    limit = {"declared": 1_000_000, "ratio": 10_000_000, "streamed": 1_000_000, "plain csv": 1_000_000}[how]
    with pytest.raises(CrawlError, match="limit|compressed|not a real export") as refused:
        LinkedInExportCrawler(max_bytes=limit).crawl(str(archive), AUTHOR)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("encoding", ["utf-16", "cp1252", "latin-1"])
def test_an_export_in_another_encoding_is_read(tmp_path, encoding):
    shares = write_shares([["2026-01-02", "https://www.linkedin.com/feed/update/urn:li:share:1",
                            "Café crème, naïve façade: déjà vu in every paragraph we write about évaluation.", "", "", ""]])
    (tmp_path / "Shares.csv").write_bytes(shares.encode(encoding))
    [post] = LinkedInExportCrawler().crawl(str(tmp_path / "Shares.csv"), AUTHOR)
    assert post.content.body.startswith("Café crème, naïve façade")


def test_a_csv_without_the_expected_columns_is_refused(tmp_path):
    (tmp_path / "Shares.csv").write_text("a,b\n1,2\n")
    with pytest.raises(CrawlError, match="lacks the columns ShareCommentary, ShareLink"):
        LinkedInExportCrawler().crawl(str(tmp_path / "Shares.csv"), AUTHOR)


def test_the_dispatcher_picks_a_crawler_from_the_link(tmp_path, git_repository, http):
    (tmp_path / "export.zip").write_bytes(b"")
    assert classify_link("https://github.com/ada/tools") == LinkKind.GIT_REPOSITORY
    assert classify_link("https://gitlab.com/ada/tools.git") == LinkKind.GIT_REPOSITORY
    assert classify_link("git@github.com:ada/tools.git") == LinkKind.GIT_REPOSITORY
    assert classify_link("https://github.com/ada") == LinkKind.WEB_PAGE
    assert classify_link("https://ada.substack.com/p/x") == LinkKind.WEB_PAGE
    assert classify_link(str(git_repository)) == LinkKind.GIT_REPOSITORY
    assert classify_link(str(tmp_path / "export.zip")) == LinkKind.LINKEDIN_EXPORT
    assert isinstance(CrawlerDispatcher(http).crawler_for(str(git_repository)), GitCrawler)


def test_any_repository_git_can_clone_is_accepted_and_crawled(tmp_path, git_repository, http, warehouse):
    """A bare repository whose name does not end in .git, a symlink to it, and a file:// link to either."""
    bare = tmp_path / "ada-tools-bare"
    subprocess.run(["git", "clone", "-q", "--bare", str(git_repository), str(bare)], check=True)
    alias = tmp_path / "tools-link"
    alias.symlink_to(bare)
    not_a_repository = tmp_path / "plain-folder"
    not_a_repository.mkdir()
    for link in (str(bare), f"file://{bare}", str(alias), f"file://{alias}"):
        assert classify_link(normalize_link(link)) == LinkKind.GIT_REPOSITORY, link
    with pytest.raises(ValueError, match="not a web link, a git repository"):
        classify_link(str(not_a_repository))

    registration = register_links(warehouse, "Ada Quill", [f"file://{alias}"])
    [document] = CrawlerDispatcher(http).crawler_for(registration.added[0]).crawl(registration.added[0], AUTHOR)
    assert document.category == Category.REPOSITORIES
    assert "src/core.py" in {f.path for f in document.content.files}


@pytest.mark.parametrize("link", ["ftp://ada.dev/x", "/no/such/file.zip", "/no/such/dir", "https://",
                                  "-utouch@x:/tmp/pwned", "--upload-pack=touch /tmp/pwned", " -c core.x=y"])
def test_unusable_links_are_refused_with_a_reason(link):
    with pytest.raises(ValueError):
        classify_link(link)


def test_crawling_the_same_page_twice_in_one_process_gives_the_same_text(http, site):
    first = WebCrawler(http).crawl(site.url("/blog/voice.html"), AUTHOR)[0]
    second = WebCrawler(http).crawl(site.url("/blog/voice.html"), AUTHOR)[0]
    assert second.content_hash == first.content_hash and "opening paragraph" in second.content.body
