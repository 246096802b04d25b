"""Tag listing and the catalog: lexical order, n/last pagination and Link headers."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from registry.core.tag_lists import TagListCache

from .auth_helpers import basic, grant, seed, user
from .helpers import assert_error, make_client, push_image, push_manifest

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


# -------------------------------------------------- whole lists: freshness, bytes, ETag
# A server keeps each whole tag list it encoded, checked against the repository's tags
# version on every request: each change below must show in the very next list.


@pytest.mark.tollgate_only  # distribution 2.8.2 lists tags unsorted and cannot delete tags
def test_tags_list_shows_every_change_at_once(client, repo, tagged):
    def listed():
        resp = client.get(f"/v2/{repo}/tags/list")
        assert resp.status_code == 200, resp.text
        return resp.json()["tags"]

    assert listed() == tagged
    image = push_image(client, repo, "new")
    assert listed() == sorted([*tagged, "new"])
    push_manifest(client, repo, "z", image.body, image.media_type)  # re-pointed, same names
    assert listed() == sorted([*tagged, "new"])
    push_manifest(client, repo, f"{image.digest}?tag=extra-1&tag=extra-2", image.body,
                  image.media_type)
    assert listed() == sorted([*tagged, "new", "extra-1", "extra-2"])
    assert client.delete(f"/v2/{repo}/manifests/latest").status_code == 202
    assert listed() == sorted({*tagged, "new", "extra-1", "extra-2"} - {"latest"})
    # by digest: every tag pointing at it goes ("new", "z", "extra-*")
    assert client.delete(f"/v2/{repo}/manifests/{image.digest}").status_code == 202
    assert listed() == [t for t in tagged if t not in ("latest", "z")]


@pytest.mark.tollgate_only
def test_tags_list_of_last_tag_deleted_is_empty(client, repo):
    push_image(client, repo, "only")
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["only"]
    assert client.delete(f"/v2/{repo}/manifests/only").status_code == 202
    assert client.get(f"/v2/{repo}/tags/list").json() == {"name": repo, "tags": []}


@pytest.mark.tollgate_only
def test_tags_list_body_is_compact_json(client, repo, tagged):
    for _ in range(2):  # first encoded, then kept
        resp = client.get(f"/v2/{repo}/tags/list")
        assert resp.headers["Content-Type"] == "application/json"
        expected = json.dumps({"name": repo, "tags": tagged}, separators=(",", ":")).encode()
        assert resp.content == expected
        assert resp.headers["Content-Length"] == str(len(expected))


@pytest.mark.tollgate_only
def test_tags_list_etag_answers_if_none_match_with_304(client, repo, tagged):
    first = client.get(f"/v2/{repo}/tags/list")
    etag = first.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{64}"', etag)
    for value in (etag, f'"other", {etag}'):
        resp = client.get(f"/v2/{repo}/tags/list", headers={"If-None-Match": value})
        assert resp.status_code == 304
        assert resp.content == b""
        assert resp.headers["ETag"] == etag
    resp = client.get(f"/v2/{repo}/tags/list", headers={"If-None-Match": '"other"'})
    assert resp.status_code == 200 and resp.content == first.content

    push_image(client, repo, "new")
    resp = client.get(f"/v2/{repo}/tags/list", headers={"If-None-Match": etag})
    assert resp.status_code == 200
    assert resp.json()["tags"] == sorted([*tagged, "new"])
    assert resp.headers["ETag"] != etag
    # pages carry no ETag and ignore If-None-Match
    page = client.get(f"/v2/{repo}/tags/list?n=2", headers={"If-None-Match": etag})
    assert page.status_code == 200 and "ETag" not in page.headers


@pytest.mark.tollgate_only
def test_tags_list_kept_for_one_caller_is_still_refused_to_others(registry_factory):
    server = registry_factory("--auth", "basic")
    seed(server, user("puller", "puller-Secret-1"), user("other", "other-Secret-1"),
         grant("puller", "team/*", "pull,push"))
    with make_client(server.url) as c:
        c.headers.update(basic("puller", "puller-Secret-1"))
        push_image(c, "team/app", "v1")
        assert c.get("/v2/team/app/tags/list").json()["tags"] == ["v1"]
        etag = c.get("/v2/team/app/tags/list").headers["ETag"]
    with make_client(server.url) as c:
        resp = c.get("/v2/team/app/tags/list", headers={"If-None-Match": etag})
        assert_error(resp, 401, "UNAUTHORIZED")
        resp = c.get("/v2/team/app/tags/list", headers=basic("other", "other-Secret-1"))
        assert_error(resp, 403, "DENIED")
        assert_error(c.get("/v2/team/none/tags/list",
                           headers=basic("puller", "puller-Secret-1")), 404, "NAME_UNKNOWN")


@pytest.mark.tollgate_only
def test_kept_tag_lists_are_bounded_and_checked_against_the_version():
    cache = TagListCache(max_bytes=10)
    cache.put("a", (1, 7), b"aaaa")
    cache.put("b", (2, 3), b"bbbb")
    assert cache.get("a", (1, 7)).body == b"aaaa"  # now the most recently used
    assert cache.get("a", (1, 8)) is None and cache.get("a", (9, 7)) is None
    cache.put("c", (3, 1), b"cccc")  # over 10 bytes: "b", the least recently used, goes
    assert cache.get("b", (2, 3)) is None
    assert cache.get("a", (1, 7)) and cache.get("c", (3, 1)) and cache.size == 8
    assert cache.put("d", (4, 1), b"d" * 11).body == b"d" * 11  # served, too big to keep
    assert cache.get("d", (4, 1)) is None and cache.size == 8
    cache.put("a", (1, 8), b"a")  # replaced, not added
    assert cache.get("a", (1, 8)).body == b"a" and cache.size == 5


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
