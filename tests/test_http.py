import time

import pytest

from twin_resources.http import FetchError, HttpClient


def test_pages_are_fetched_with_our_user_agent(http, site):
    html, final_url = http.fetch_html(site.url("/blog/voice.html"))
    assert "What makes a voice" in html and final_url == site.url("/blog/voice.html")
    agents = {agent for path, _, agent in site.server.requests}
    assert agents == {http.user_agent} and "LLMTwinBot" in http.user_agent


def test_robots_txt_is_read_once_per_host_and_obeyed(http, site):
    with pytest.raises(FetchError, match="robots.txt disallows"):
        http.fetch_html(site.url("/drafts/secret"))
    http.fetch_html(site.url("/blog/voice.html"))
    paths = [path for path, _, _ in site.server.requests]
    assert paths.count("/robots.txt") == 1 and "/drafts/secret" not in paths


def test_server_errors_are_retried_until_the_page_comes(http, site):
    html, _ = http.fetch_html(site.url("/flaky"))
    assert "Evals first" in html and site.server.hits["/flaky"] == 3


def test_a_429_is_retried(http, site):
    html, _ = http.fetch_html(site.url("/ratelimited"))
    assert "What makes a voice" in html and site.server.hits["/ratelimited"] == 2


@pytest.mark.parametrize(("path", "reason"), [
    ("/status/404", "HTTP 404"),
    ("/status/500", "HTTP 500 Internal Server Error (after 2 retries)"),
    ("/report.pdf", "not an HTML page (application/pdf)"),
])
def test_failures_carry_a_one_line_reason(http, site, path, reason):
    with pytest.raises(FetchError, match=reason.replace("(", r"\(").replace(")", r"\)")) as failure:
        http.fetch_html(site.url(path))
    assert "\n" not in str(failure.value)
    assert site.server.hits[path] == (3 if path == "/status/500" else 1)


def test_a_slow_server_times_out(site):
    client = HttpClient(min_interval_s=0, retries=0, timeout_s=0.3)
    with pytest.raises(FetchError, match="timed out after 0.3s"):
        client.fetch_html(site.url("/slow"))


def test_a_dead_host_is_a_clear_error(http):
    with pytest.raises(FetchError, match="cannot connect"):
        http.fetch_html("http://127.0.0.1:9/nothing-listens-here")


def test_requests_to_one_host_are_spaced_by_the_rate_limit(site):
    client = HttpClient(min_interval_s=0.2, retries=0)
    for _ in range(3):
        client.fetch_html(site.url("/blog/voice.html"))
    starts = [when for path, when, _ in site.server.requests]
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:])]
    # robots.txt, then three pages. The server sees arrivals, not the client's starts: the first
    # request also opens the connection, so single gaps jitter; the whole span cannot shrink.
    assert len(starts) == 4
    assert min(gaps) >= 0.1 and starts[-1] - starts[0] >= 0.55


@pytest.mark.parametrize("robots", [False, True], ids=["page", "robots.txt"])
def test_a_body_that_trickles_in_is_cut_off_at_the_fetch_deadline(site, robots):
    """A byte every 0.2 s never trips the socket timeout; the deadline over the whole fetch does."""
    site.server.trickle_robots = robots
    client = HttpClient(min_interval_s=0, retries=0, timeout_s=5, deadline_s=1.0)
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"took longer than 1s in all"):
        client.fetch_html(site.url("/blog/voice.html" if robots else "/trickle"))
    assert time.monotonic() - started < 3


def test_a_retry_after_beyond_the_cap_fails_now_and_is_left_for_a_later_crawl(site):
    client = HttpClient(min_interval_s=0, retries=3, backoff_s=0.01, max_retry_after_s=5)
    started = time.monotonic()
    with pytest.raises(FetchError, match=r"asks to retry after 3600s \(we wait at most 5s\): retried in a later crawl"):
        client.fetch_html(site.url("/retry-in-an-hour"))
    assert time.monotonic() - started < 2 and site.server.hits["/retry-in-an-hour"] == 1
