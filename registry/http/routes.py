"""The route table of the /v2/ API. Repository names contain slashes, so they use `:path`;
the more specific routes come first."""

from starlette.routing import Route

from registry.http import admin, base, blobs, fixture, listing, manifests, token, uploads

NAME = "/v2/{name:path}"

ROUTES = [
    Route("/v2/", base.api_version, methods=["GET", "HEAD"]),
    Route("/health", base.health, methods=["GET", "HEAD"]),
    Route("/v2/_catalog", listing.catalog, methods=["GET"]),
    Route(NAME + "/tags/list", listing.list_tags, methods=["GET"]),
    Route(NAME + "/referrers/{digest}", listing.referrers, methods=["GET"]),
    Route(NAME + "/manifests/{reference}", manifests.get_manifest, methods=["GET", "HEAD"]),
    Route(NAME + "/manifests/{reference}", manifests.put_manifest, methods=["PUT"]),
    Route(NAME + "/manifests/{reference}", manifests.delete_manifest, methods=["DELETE"]),
    Route(NAME + "/blobs/uploads/", uploads.start_upload, methods=["POST"]),
    Route(NAME + "/blobs/uploads", uploads.start_upload, methods=["POST"]),
    Route(NAME + "/blobs/uploads/{uuid}", uploads.patch_upload, methods=["PATCH"]),
    Route(NAME + "/blobs/uploads/{uuid}", uploads.finish_upload, methods=["PUT"]),
    Route(NAME + "/blobs/uploads/{uuid}", uploads.upload_status, methods=["GET"]),
    Route(NAME + "/blobs/uploads/{uuid}", uploads.cancel_upload, methods=["DELETE"]),
    Route(NAME + "/blobs/{digest}", blobs.get_blob, methods=["GET", "HEAD"]),
    Route(NAME + "/blobs/{digest}", blobs.delete_blob, methods=["DELETE"]),
]

TOKEN_ROUTES = [
    Route("/auth/token", token.get_token, methods=["GET"]),
    Route("/auth/token", token.post_token, methods=["POST"]),
    Route("/auth/jwks.json", token.jwks, methods=["GET"]),
]

ADMIN_ROUTES = [
    Route("/admin/users", admin.list_users, methods=["GET"]),
    Route("/admin/users", admin.add_user, methods=["POST"]),
    Route("/admin/users/{user}", admin.update_user, methods=["PATCH"]),
    Route("/admin/users/{user}", admin.remove_user, methods=["DELETE"]),
    Route("/admin/users/{user}/tokens", admin.create_access_token, methods=["POST"]),
    Route("/admin/users/{user}/tokens/{token}", admin.revoke_access_token, methods=["DELETE"]),
    Route("/admin/grants", admin.list_grants, methods=["GET"]),
    Route("/admin/grants", admin.add_grant, methods=["POST"]),
    Route("/admin/grants", admin.remove_grant, methods=["DELETE"]),
    Route("/admin/faults", fixture.list_faults, methods=["GET"]),
    Route("/admin/faults", fixture.add_fault, methods=["POST"]),
    Route("/admin/faults", fixture.clear_faults, methods=["DELETE"]),
    Route("/admin/faults/{id}", fixture.remove_fault, methods=["DELETE"]),
    Route("/admin/journal", fixture.query_journal, methods=["GET"]),
    Route("/admin/journal", fixture.clear_journal, methods=["DELETE"]),
]
