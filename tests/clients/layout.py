"""Deterministic test images, built in memory with no network.

Two single-platform images (linux/amd64 and linux/arm64/v8), each one gzipped layer holding
`hello.txt` plus a config, in two flavours that share the same config and layer bytes:

* OCI: image manifests and an image index;
* Docker schema 2: manifests and a manifest list.

Every byte is fixed (tar entries with mtime 0 and owner 0/0, gzip with mtime 0, compact JSON),
so the digests are the same on every run with the same zlib. The images can be written as an
OCI image layout directory (refs `amd64`, `arm64`, `multi`), as a tar of that layout (what
`ctr images import` reads) or as a docker-archive (what `docker load` reads).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=False).encode()


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]

    def descriptor(self, **extra: object) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True)
class PlatformImage:
    os: str
    architecture: str
    variant: str | None
    layer_tar: bytes          # uncompressed layer (its sha256 is the diff_id)
    layer: Blob               # gzipped layer, OCI media type
    config: Blob              # OCI media type
    manifest: Blob            # OCI image manifest
    docker_layer: Blob        # same bytes as `layer`, Docker media type
    docker_config: Blob       # same bytes as `config`, Docker media type
    docker_manifest: Blob     # Docker schema 2 manifest
    hello: bytes              # content of hello.txt in the layer

    @property
    def platform(self) -> dict:
        p = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            p["variant"] = self.variant
        return p

    @property
    def platform_str(self) -> str:
        return "/".join(x for x in (self.os, self.architecture, self.variant) if x)

    @property
    def diff_id(self) -> str:
        return sha256(self.layer_tar)


@dataclass(frozen=True)
class ImageSet:
    amd64: PlatformImage
    arm64: PlatformImage
    index: Blob               # OCI image index of both
    docker_list: Blob         # Docker manifest list of both

    @property
    def images(self) -> tuple[PlatformImage, PlatformImage]:
        return (self.amd64, self.arm64)

    def blob(self, digest: str) -> Blob:
        """Any blob or manifest of the set by digest."""
        for b in self.all_blobs():
            if b.digest == digest:
                return b
        raise KeyError(digest)

    def all_blobs(self) -> list[Blob]:
        out = [self.index, self.docker_list]
        for im in self.images:
            out += [im.layer, im.config, im.manifest, im.docker_manifest]
        return out


def _layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            data = files[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def _platform_image(arch: str, variant: str | None, label: str) -> PlatformImage:
    hello = f"tollgate client test image {arch} {label}\n".encode()
    layer_tar = _layer_tar({"hello.txt": hello})
    gz = _gzip(layer_tar)
    config: dict = {
        "architecture": arch,
        "os": "linux",
        "config": {"Cmd": ["/hello"], "Labels": {"org.example.arch": arch}},
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer_tar)]},
        "created": "1970-01-01T00:00:00Z",
    }
    if variant:
        config["variant"] = variant
    cfg = canonical(config)
    layer, config_blob = Blob(OCI_LAYER, gz), Blob(OCI_CONFIG, cfg)
    manifest = Blob(OCI_MANIFEST, canonical({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": config_blob.descriptor(), "layers": [layer.descriptor()],
    }))
    d_layer, d_config = Blob(DOCKER_LAYER, gz), Blob(DOCKER_CONFIG, cfg)
    d_manifest = Blob(DOCKER_MANIFEST, canonical({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": d_config.descriptor(), "layers": [d_layer.descriptor()],
    }))
    return PlatformImage("linux", arch, variant, layer_tar, layer, config_blob, manifest,
                         d_layer, d_config, d_manifest, hello)


def build_images(label: str = "v1") -> ImageSet:
    """The image set; a different `label` gives different layers (and digests)."""
    amd = _platform_image("amd64", None, label)
    arm = _platform_image("arm64", "v8", label)
    index = Blob(OCI_INDEX, canonical({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [im.manifest.descriptor(platform=im.platform) for im in (amd, arm)],
    }))
    docker_list = Blob(DOCKER_LIST, canonical({
        "schemaVersion": 2, "mediaType": DOCKER_LIST,
        "manifests": [im.docker_manifest.descriptor(platform=im.platform) for im in (amd, arm)],
    }))
    return ImageSet(amd, arm, index, docker_list)


def _layout_files(images: ImageSet) -> dict[str, bytes]:
    files: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}'}
    for b in [images.index, *[x for im in images.images for x in (im.layer, im.config,
                                                                    im.manifest)]]:
        files[f"blobs/sha256/{b.hex}"] = b.data
    ref = "org.opencontainers.image.ref.name"
    files["index.json"] = json.dumps({
        "schemaVersion": 2,
        "manifests": [
            images.amd64.manifest.descriptor(platform=images.amd64.platform,
                                             annotations={ref: "amd64"}),
            images.arm64.manifest.descriptor(platform=images.arm64.platform,
                                             annotations={ref: "arm64"}),
            images.index.descriptor(annotations={ref: "multi"}),
        ],
    }, indent=1).encode()
    return files


def write_oci_layout(images: ImageSet, path: Path) -> Path:
    """OCI image layout directory with refs `amd64`, `arm64` and `multi` (the index)."""
    for name, data in _layout_files(images).items():
        p = path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return path


def _write_tar(files: dict[str, bytes], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(files[name]), 0, 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    return path


def write_oci_archive(images: ImageSet, path: Path) -> Path:
    """The OCI layout as one tar file (`ctr images import`, `oci-archive:`)."""
    return _write_tar(_layout_files(images), path)


def write_docker_archive(image: PlatformImage, repo_tag: str, path: Path) -> Path:
    """A `docker save`-style archive of one image, for `docker load`."""
    layer_name = f"{image.layer.hex}/layer.tar"
    files = {
        f"{image.config.hex}.json": image.config.data,
        layer_name: image.layer_tar,
        "manifest.json": canonical([{"Config": f"{image.config.hex}.json",
                                     "RepoTags": [repo_tag], "Layers": [layer_name]}]),
    }
    return _write_tar(files, path)
