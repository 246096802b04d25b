"""`tollgate image build`, `tollgate import` and `tollgate export`: synthetic images, and OCI
image layouts in and out of a registry's data (straight into storage and the database, so they
work on the data dir of a running server too)."""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from urllib.parse import urlsplit

from registry.cli.common import add_common_options, engine_for, fail
from registry.config import Settings

SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
              "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


def parse_size(text: str) -> int:
    """`1024`, `64KiB`, `10MiB`, `1.5MB`, `1GiB`."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in SIZE_UNITS:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (e.g. 1024, 64KiB, 10MiB)")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).lower()])


def parse_sizes(text: str) -> list[int]:
    return [parse_size(part) for part in text.split(",")]


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    return key, value


def add_commands(commands: argparse._SubParsersAction) -> None:
    image = commands.add_parser("image", help="make synthetic test images").add_subparsers(
        dest="action", required=True)
    build = image.add_parser(
        "build", help="make a deterministic synthetic image and write it to an OCI layout or "
                      "push it to a registry",
        description="Same arguments, same digests: layer content is pseudo-random from a seed "
                    "derived from the name (or --seed), platform and layer position.")
    build.add_argument("name", metavar="NAME[:TAG]", help="repository name and tag "
                                                          "(default tag: latest)")
    build.add_argument("--platform", default="linux/amd64",
                       help="comma-separated OS/ARCH[/VARIANT] (default linux/amd64); several "
                            "make an index / manifest list")
    build.add_argument("--layers", type=int, default=None, help="number of layers (default 1)")
    build.add_argument("--layer-size", type=parse_sizes, default=[1024], metavar="BYTES",
                       help="bytes of content per layer, e.g. 1024, 10MiB, or one size per "
                            "layer: 1KiB,10MiB (default 1024)")
    build.add_argument("--label", type=key_value, action="append", default=[],
                       metavar="KEY=VALUE", help="config label (repeatable)")
    build.add_argument("--annotation", type=key_value, action="append", default=[],
                       metavar="KEY=VALUE", help="manifest annotation (repeatable; OCI only)")
    build.add_argument("--format", choices=("oci", "docker"), default="oci",
                       help="OCI image (default) or Docker schema 2")
    build.add_argument("--index", action="store_true",
                       help="make an index even for one platform")
    build.add_argument("--seed", help="seed of the layer content (default: NAME:TAG)")
    target = build.add_mutually_exclusive_group(required=True)
    target.add_argument("--output-layout", metavar="DIR",
                        help="write into this OCI image layout (made if needed), ref = TAG")
    target.add_argument("--push", metavar="URL",
                        help="push to the registry at URL (http://127.0.0.1:5000)")
    build.add_argument("--user", help="user name for --push")
    build.add_argument("--password-stdin", action="store_true",
                       help="read the password for --push from standard input")
    build.add_argument("--insecure", action="store_true",
                       help="do not verify the registry's TLS certificate")
    build.add_argument("--ca-cert", metavar="FILE",
                       help="trust this CA for --push over HTTPS (e.g. `tollgate tls init`'s "
                            "ca.crt)")
    build.set_defaults(handler=run_build)

    importer = commands.add_parser(
        "import", help="import an OCI image layout into the registry's data (no HTTP)",
        description="With :TAG, import the layout's ref of that name; without, every ref, "
                    "each tagged by its ref name.")
    add_common_options(importer)
    importer.add_argument("layout", metavar="LAYOUT_DIR")
    importer.add_argument("reference", metavar="REPO[:TAG]")
    importer.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    importer.set_defaults(handler=run_import)

    exporter = commands.add_parser(
        "export", help="export images of a repository into an OCI image layout (no HTTP)",
        description="REPO:TAG or REPO@DIGEST exports that manifest (an index with all its "
                    "children), REPO alone every tag; refs are named after the tags.")
    add_common_options(exporter)
    exporter.add_argument("reference", metavar="REPO[:TAG|@DIGEST]")
    exporter.add_argument("layout", metavar="LAYOUT_DIR")
    exporter.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    exporter.set_defaults(handler=run_export)


def _registry_url(url: str) -> str:
    """A URL with a scheme: http for loopback hosts given bare, https otherwise."""
    if "://" in url:
        return url
    host = urlsplit("//" + url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return ("http://" if loopback else "https://") + url


def run_build(args: argparse.Namespace, settings: Settings) -> int:
    from registry.fixture.images import PushError, build_image, push_image, split_reference
    from registry.fixture.layout import LayoutError, write_image

    try:
        repository, tag, digest = split_reference(args.name)
    except ValueError as e:
        return fail(str(e), 2)
    if digest:
        return fail("NAME must be REPO[:TAG], not a digest reference", 2)
    tag = tag or "latest"
    sizes = args.layer_size
    layer_size = sizes[0] if len(sizes) == 1 else sizes
    if args.password_stdin and not args.user:
        return fail("--password-stdin needs --user", 2)
    try:
        image = build_image(f"{repository}:{tag}", platforms=args.platform, layers=args.layers,
                            layer_size=layer_size, labels=dict(args.label),
                            annotations=dict(args.annotation), format=args.format,
                            seed=args.seed, index=True if args.index else None)
    except ValueError as e:
        return fail(str(e), 2)
    if args.output_layout:
        try:
            write_image(image, args.output_layout, tag)
        except (LayoutError, OSError) as e:
            return fail(str(e))
        print(f"{image.digest} {image.media_type} -> {args.output_layout} (ref {tag})")
        return 0
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        digest = push_image(image, _registry_url(args.push), f"{repository}:{tag}",
                            username=args.user, password=password, insecure=args.insecure,
                            ca_file=args.ca_cert)
    except (PushError, OSError) as e:
        return fail(f"push failed: {e}")
    print(f"{digest} {image.media_type} -> {args.push} {repository}:{tag}")
    return 0


def _open_services(settings: Settings):  # noqa: ANN202 - registry.app.Services
    from registry.app import make_services
    from registry.db.migrate import ensure_schema

    engine = engine_for(settings)
    try:
        ensure_schema(engine)
    finally:
        engine.dispose()
    return make_services(settings)


def run_import(args: argparse.Namespace, settings: Settings) -> int:
    from registry.db.migrate import SchemaOutOfDate
    from registry.fixture.images import split_reference
    from registry.fixture.layout import LayoutError, import_layout

    repository, tag, digest = split_reference(args.reference)
    if digest:
        return fail("REPO[:TAG] expected, not a digest reference", 2)
    try:
        services = _open_services(settings)
    except SchemaOutOfDate as e:
        return fail(str(e))
    try:
        result = import_layout(services, args.layout, repository, tag,
                               progress=False if args.no_progress else None)
    except LayoutError as e:
        return fail(f"import refused: {e}")
    finally:
        services.database.dispose()
    for tag_name, manifest_digest in result.tags:
        print(f"{repository}:{tag_name} {manifest_digest}")
    for manifest_digest in result.untagged:
        print(f"{repository}@{manifest_digest}")
    print(f"imported {result.manifests} manifests and {result.blobs} blobs "
          f"({result.bytes_copied} bytes copied, {result.blobs_present} blobs already stored)",
          file=sys.stderr)
    return 0


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    from registry.db.migrate import SchemaOutOfDate
    from registry.fixture.images import split_reference
    from registry.fixture.layout import LayoutError, export_image

    repository, tag, digest = split_reference(args.reference)
    try:
        services = _open_services(settings)
    except SchemaOutOfDate as e:
        return fail(str(e))
    try:
        result = export_image(services, repository, digest or tag, args.layout,
                              progress=False if args.no_progress else None)
    except (LayoutError, OSError) as e:
        return fail(f"export failed: {e}")
    finally:
        services.database.dispose()
    for ref_name, manifest_digest in result.refs:
        print(f"{manifest_digest} -> {args.layout}" + (f" (ref {ref_name})" if ref_name else ""))
    print(f"exported {result.manifests} manifests and {result.blobs} blobs "
          f"({result.bytes_copied} bytes copied)", file=sys.stderr)
    return 0
