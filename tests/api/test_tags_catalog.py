"""Tag listing and the catalog: lexical order, n/last pagination and Link headers."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from .helpers import assert_error, push_image, push_manifest

# Lower case only: the spec's "lexical order" and distribution's byte order agree on these.
TAGS = ["v1.10", "latest", "1.0", "v2", "v1.2", "a-b", "a_b", "a.b", "z", "9", "b"]

LINK = re.compile(r'^<([^>]+)>;\s*rel="?next"?$')


def next_link(resp):
    """The target of a `Link: <...>; rel="next"` header, or None."""
    value = resp.headers.get("Link")
    if value is None:
        return None
    match = LINK.match(value.strip())
    assert match, f"malformed Link header: {value!r}"
    return match.group(1)


@pytest.fixture
def tagged(client, repo):
    image = push_image(client, repo, TAGS[0])
    for tag in TAGS[1:]:
        push_manifest(client, repo, tag, image.body, image.media_type)
    return sorted(TAGS)


@pytest.mark.tollgate_only  # distribution 2.8.2 lists tags unsorted
def test_tags_list_is_complete_and_in_lexical_order(client, repo, tagged):
    resp = client.get(f"/v2/{repo}/tags/list")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.json() == {"name": repo, "tags": tagged}
    assert "Link" not in resp.headers


@pytest.mark.tollgate_only
def test_tags_list_paginates_with_n_and_link(client, repo, tagged):
    resp = client.get(f"/v2/{repo}/tags/list?n=4")
    assert resp.status_code == 200
    assert resp.json()["tags"] == tagged[:4]
    link = next_link(resp)
    assert link, "a full page must carry a Link to the next one"
    parts = urlsplit(link)
    assert parts.path == f"/v2/{repo}/tags/list"
    query = parse_qs(parts.query)
    assert query["n"] == ["4"]
    assert query["last"] == [tagged[3]]

    seen = list(resp.json()["tags"])
    while link:
        resp = client.get(link)
        assert resp.status_code == 200
        page = resp.json()["tags"]
        assert 0 < len(page) <= 4
        seen += page
        link = next_link(resp)
    assert seen == tagged


@pytest.mark.tollgate_only
def test_tags_list_with_last_starts_after_that_tag(client, repo, tagged):
    resp = client.get(f"/v2/{repo}/tags/list", params={"n": 3, "last": tagged[2]})
    assert resp.json()["tags"] == tagged[3:6]
    resp = client.get(f"/v2/{repo}/tags/list", params={"last": tagged[-3]})
    assert resp.json()["tags"] == tagged[-2:]
    assert "Link" not in resp.headers


@pytest.mark.tollgate_only
def test_tags_list_last_need_not_be_an_existing_tag(client, repo, tagged):
    resp = client.get(f"/v2/{repo}/tags/list", params={"last": "v1.1"})
    assert resp.json()["tags"] == [t for t in tagged if t > "v1.1"]


@pytest.mark.tollgate_only
def test_tags_list_with_n_zero_is_empty_without_link(client, repo, tagged):
    resp = client.get(f"/v2/{repo}/tags/list?n=0")
    assert resp.status_code == 200
    assert resp.json()["tags"] == []
    assert "Link" not in resp.headers


@pytest.mark.tollgate_only  # distribution 2.8.2 lists tags unsorted
def test_tags_list_with_n_larger_than_the_list_returns_everything(client, repo, tagged):
    resp = client.get(f"/v2/{repo}/tags/list?n=1000")
    assert resp.status_code == 200
    assert resp.json()["tags"] == tagged
    assert "Link" not in resp.headers


@pytest.mark.tollgate_only
def test_tags_list_exactly_filled_last_page_has_no_link(client, repo, tagged):
    resp = client.get(f"/v2/{repo}/tags/list", params={"n": len(tagged)})
    assert resp.json()["tags"] == tagged
    assert "Link" not in resp.headers


@pytest.mark.tollgate_only
@pytest.mark.parametrize("n", ["-1", "abc"])
def test_tags_list_with_invalid_n_is_400(client, repo, tagged, n):
    assert_error(client.get(f"/v2/{repo}/tags/list?n={n}"), 400,
                 "PAGINATION_NUMBER_INVALID")


def test_tags_list_of_unknown_repository_is_404_name_unknown(client, repo):
    assert_error(client.get(f"/v2/{repo}/tags/list"), 404, "NAME_UNKNOWN")


@pytest.mark.tollgate_only
def test_tags_list_of_repository_without_tags_is_empty(client, repo):
    image = push_image(client, repo)  # by digest only
    resp = client.get(f"/v2/{repo}/tags/list")
    assert resp.status_code == 200
    assert resp.json() == {"name": repo, "tags": []}
    assert image.digest


# ---------------------------------------------------------------- catalog


@pytest.fixture
def repos(client, repo):
    """Five repositories sorting right after `repo` (which itself holds nothing)."""
    names = [f"{repo}/{suffix}" for suffix in ("b", "a", "e/x", "d", "c")]
    for name in names:
        push_image(client, name, "v1")
    return sorted(names)


def test_catalog_lists_repositories_in_lexical_order(client, repo, repos):
    resp = client.get("/v2/_catalog", params={"n": 1000})
    assert resp.status_code == 200
    everything = resp.json()["repositories"]
    assert everything == sorted(everything)
    resp = client.get("/v2/_catalog", params={"n": 1000, "last": repo})
    assert resp.json()["repositories"][:5] == repos


def test_catalog_paginates_with_n_last_and_link(client, repo, repos):
    resp = client.get("/v2/_catalog", params={"n": 2, "last": repo})
    assert resp.status_code == 200
    assert resp.json() == {"repositories": repos[:2]}
    link = next_link(resp)
    assert link
    parts = urlsplit(link)
    assert parts.path == "/v2/_catalog"
    query = parse_qs(parts.query)
    assert query["n"] == ["2"]
    assert query["last"] == [repos[1]]

    resp = client.get(link)
    assert resp.json()["repositories"] == repos[2:4]
    resp = client.get(next_link(resp))
    assert resp.json()["repositories"][0] == repos[4]


def test_catalog_with_n_zero_is_empty_without_link(client, repos):
    resp = client.get("/v2/_catalog?n=0")
    assert resp.status_code == 200
    assert resp.json() == {"repositories": []}
    assert "Link" not in resp.headers


def test_catalog_includes_repository_with_only_untagged_manifests(client, repo):
    push_image(client, f"{repo}/untagged")
    resp = client.get("/v2/_catalog", params={"n": 10, "last": repo})
    assert f"{repo}/untagged" in resp.json()["repositories"]
