"""The route table of the /v2/ API. Repository names contain slashes, so they use `:path`;
the more specific routes come first."""

from starlette.routing import Route

from registry.http import base, blobs, listing, manifests, uploads

NAME = "/v2/{name:path}"

ROUTES = [
    Route("/v2/", base.api_version, methods=["GET", "HEAD"]),
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
