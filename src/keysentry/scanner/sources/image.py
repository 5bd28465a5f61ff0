"""Container images as a source: every layer's files and the config, as Blobs naming the layer
digest and the build step that made them.

`docker save` / `podman save` tarballs (`manifest.json`) and OCI image layouts (`index.json` +
`oci-layout`, a directory or a tarball) are recognised inside any seekable tar the archive walk
opens, and by `keysentry scan --image NAME` (a file, a layout directory, or an image name that
`docker save` or `skopeo` fetches into a private temporary directory).

A file deleted by a later layer (a whiteout, `.wh.<name>`, or an opaque directory) is still in
the image: layers are immutable and anyone who pulls the image has them all. So every layer is
scanned in full, from the last to the first: by the time a layer is read, the whiteouts of all
the layers above it are known, and each of its files is marked "deleted in layer N" when one
covers it. The image config is scanned too: each `Env` entry and each `history` step (`ENV`,
`RUN` lines and the build args they show) as a member of its own, the rest as JSON. Build steps
are quoted scrubbed (keys redacted): they end up in reports.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any, NamedTuple, Protocol

from keysentry.errors import InputError
from keysentry.safety import scrub
from keysentry.scanner.findings import Blob
from keysentry.scanner.sources.archives import (
    Limits,
    Walk,
    chain_path,
    current,
    kind_of,
    opener_of,
)
from keysentry.scanner.sources.files import Skip

_JSON_LIMIT = 16 << 20  # manifests, indexes and configs are a few KB
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"


class Layer(NamedTuple):
    name: str  # the member holding it
    digest: str


class Image(NamedTuple):
    config_name: str
    config_digest: str
    layers: list[Layer]


class Layout(NamedTuple):
    kind: str  # "docker" (manifest.json) or "oci" (index.json)


class Tree(Protocol):
    """An image's files: a seekable tar's members or a layout directory's files."""

    def names(self) -> list[str]: ...

    def read_small(self, name: str, limit: int) -> bytes | None: ...

    def members(
        self, walk: Walk, names: list[str], parts: list[str], depth: int, extra: Mapping[str, Any]
    ) -> Iterator[Blob | Skip]: ...


def layout_of(infos: Iterable[Any]) -> Layout | None:
    """Whether a tar's members (TarInfo) make an image, and which kind."""
    names = {i.name.lstrip("/").removeprefix("./") for i in infos if i.isreg()}
    return _layout(names)


def _layout(names: set[str]) -> Layout | None:
    if "manifest.json" in names:
        return Layout("docker")
    if "index.json" in names and "oci-layout" in names:
        return Layout("oci")
    return None


def walk_image(
    walk: Walk, tree: Tree, layout: Layout, parts: list[str], depth: int, extra: Mapping[str, Any]
) -> Iterator[Blob | Skip]:
    """Every member of the image: layers last to first with their provenance, the config as
    fields, and everything else (manifests, indexes) as plain members."""
    where = chain_path(parts)
    try:
        images = _docker_images(tree) if layout.kind == "docker" else _oci_images(tree)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        yield Skip(where, f"image manifest not understood: {exc}", unreadable=True)
        images = []
    done: set[str] = set()
    for image in images:
        config = _json(tree, image.config_name)
        history = config.get("history") if isinstance(config, dict) else None
        steps = _layer_steps(history if isinstance(history, list) else [], len(image.layers))
        yield from _layers(walk, tree, image, steps, parts, depth, extra, done)
        if image.config_name not in done:
            done.add(image.config_name)
            yield from _config(walk, config, image, parts, extra)
    rest = [n for n in tree.names() if n not in done]
    yield from tree.members(walk, rest, parts, depth, extra)


def _json(tree: Tree, name: str) -> Any:
    data = tree.read_small(name, _JSON_LIMIT)
    if data is None:
        raise ValueError(f"{name} is missing or too large")
    return json.loads(data)


def _docker_images(tree: Tree) -> list[Image]:
    manifest = _json(tree, "manifest.json")
    images = []
    for entry in manifest:
        config_name = entry["Config"]
        config = _json(tree, config_name)
        diff_ids = config.get("rootfs", {}).get("diff_ids", [])
        layers = []
        for i, name in enumerate(entry["Layers"]):
            digest = _digest_of(name) or (diff_ids[i] if i < len(diff_ids) else "")
            layers.append(Layer(name, digest))
        images.append(Image(config_name, _digest_of(config_name) or config_name, layers))
    return images


def _oci_images(tree: Tree) -> list[Image]:
    index = _json(tree, "index.json")
    images = []
    pending = list(index.get("manifests", []))
    seen = 0
    while pending and seen < 64:  # an index of indexes, bounded
        seen += 1
        descriptor = pending.pop(0)
        manifest = _json(tree, _blob_name(descriptor["digest"]))
        if "manifests" in manifest:
            pending += manifest["manifests"]
            continue
        config_digest = manifest["config"]["digest"]
        layers = [Layer(_blob_name(d["digest"]), d["digest"]) for d in manifest["layers"]]
        images.append(Image(_blob_name(config_digest), config_digest, layers))
    return images


def _blob_name(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    if not hexdigest or "/" in digest or ".." in digest:
        raise ValueError(f"not a digest: {digest[:80]!r}")
    return f"blobs/{algorithm}/{hexdigest}"


def _digest_of(name: str) -> str | None:
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == "blobs":
        return f"{parts[1]}:{parts[2]}"
    return None


def _layer_steps(history: list[Any], layers: int) -> list[tuple[int, str] | None]:
    """For each layer, the history step (1-based) that created it and its command."""
    steps: list[tuple[int, str] | None] = []
    for number, entry in enumerate(history, 1):
        if isinstance(entry, dict) and not entry.get("empty_layer"):
            steps.append((number, str(entry.get("created_by", ""))))
    steps += [None] * (layers - len(steps))
    return steps[:layers]


def _layers(
    walk: Walk,
    tree: Tree,
    image: Image,
    steps: list[tuple[int, str] | None],
    parts: list[str],
    depth: int,
    extra: Mapping[str, Any],
    done: set[str],
) -> Iterator[Blob | Skip]:
    whiteouts: list[tuple[int, str, bool]] = []  # (layer, path, opaque) of layers read so far
    for index in reversed(range(len(image.layers))):
        layer = image.layers[index]
        number = index + 1
        info: dict[str, Any] = {"layer": number, "digest": layer.digest}
        step = steps[index]
        if step is not None:
            info["step"], info["created_by"] = step[0], scrub(step[1])[:300]
        mine: list[tuple[int, str, bool]] = []
        if layer.name in done:
            continue
        done.add(layer.name)
        depth_of_file = len(parts)  # the index of a file's in-layer path in its members
        for item in tree.members(walk, [layer.name], parts, depth, {**extra, "image": info}):
            if isinstance(item, Skip):
                yield item
                continue
            members = item.provenance.get("archive", {}).get("members", [])
            inner = members[depth_of_file] if len(members) > depth_of_file else ""
            inner = inner.lstrip("/").removeprefix("./")
            base = inner.rsplit("/", 1)[-1]
            if base.startswith(_WHITEOUT):
                directory = inner[: len(inner) - len(base)]
                if base == _OPAQUE:
                    mine.append((number, directory, True))
                else:
                    mine.append((number, directory + base[len(_WHITEOUT) :], False))
                continue
            deleted = _deleted_in(inner, whiteouts)
            if deleted is not None:
                provenance = dict(item.provenance)
                provenance["image"] = {**info, "deleted_in_layer": deleted}
                item = item._replace(provenance=provenance)
            yield item
        whiteouts += mine


def _deleted_in(path: str, whiteouts: list[tuple[int, str, bool]]) -> int | None:
    """The lowest later layer whose whiteout removes `path` from the image's view."""
    found = [
        layer
        for layer, target, opaque in whiteouts
        if (opaque and path.startswith(target))
        or (not opaque and (path == target or path.startswith(target + "/")))
    ]
    return min(found) if found else None


def _config(
    walk: Walk, config: Any, image: Image, parts: list[str], extra: Mapping[str, Any]
) -> Iterator[Blob | Skip]:
    """The config's Env entries and history steps as members of their own, the rest as JSON."""
    if not isinstance(config, dict):
        return
    base = [*parts, image.config_name]
    info = {"config": image.config_digest}
    rest = dict(config)
    history = rest.pop("history", None)
    for section in ("config", "container_config"):
        inner = rest.get(section)
        if isinstance(inner, dict) and isinstance(inner.get("Env"), list):
            inner = dict(inner)
            for i, entry in enumerate(inner.pop("Env")):
                field = f"{section}.Env[{i}]"
                walk.count_entry()
                step = _env_step(str(entry), history)
                yield walk.blob(
                    [*base, field],
                    str(entry).encode(),
                    {**extra, "image": {**info, "field": field, **step}},
                )
            rest[section] = inner
    if isinstance(history, list):
        for i, entry in enumerate(history):
            field = f"history[{i}]"
            walk.count_entry()
            text = json.dumps(entry, indent=1, ensure_ascii=False).encode()
            created = str(entry.get("created_by", "")) if isinstance(entry, dict) else ""
            step = {"step": i + 1, "created_by": scrub(created)[:300]}
            yield walk.blob(
                [*base, field], text, {**extra, "image": {**info, "field": field, **step}}
            )
    text = json.dumps(rest, indent=1, ensure_ascii=False).encode()
    yield walk.blob(base, text, {**extra, "image": info})


def _env_step(entry: str, history: Any) -> dict[str, Any]:
    """The history step whose ENV line set this variable, when one says so."""
    name = entry.split("=", 1)[0]
    if not name or not isinstance(history, list):
        return {}
    for number, step in enumerate(history, 1):
        created = str(step.get("created_by", "")) if isinstance(step, dict) else ""
        if f"ENV {name}=" in created or f"ENV {name} " in created or f" {name}=" in created:
            return {"step": number, "created_by": scrub(created)[:300]}
    return {}


# -- --image NAME -----------------------------------------------------------------------------


class _DirTree:
    """An OCI layout directory's files (no symlink followed, nothing outside it)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._names: list[str] = []
        for directory, subdirectories, files in os.walk(root):
            subdirectories.sort()
            for name in sorted(files):
                rel = os.path.relpath(os.path.join(directory, name), root)
                self._names.append(rel.replace(os.sep, "/"))
        self._listed = frozenset(self._names)

    def names(self) -> list[str]:
        return list(self._names)

    def _open(self, name: str) -> IO[bytes]:
        # Only a file the listing found: a manifest naming `../../etc/passwd` names nothing.
        if name not in self._listed:
            raise FileNotFoundError(errno.ENOENT, "not in the layout", name)
        fd = os.open(os.path.join(self.root, name), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        return os.fdopen(fd, "rb")

    def read_small(self, name: str, limit: int) -> bytes | None:
        try:
            with self._open(name) as handle:
                data = handle.read(limit + 1)
        except OSError:
            return None
        return data if len(data) <= limit else None

    def members(
        self, walk: Walk, names: list[str], parts: list[str], depth: int, extra: Mapping[str, Any]
    ) -> Iterator[Blob | Skip]:
        for name in names:
            try:
                handle = self._open(name)
            except OSError as exc:
                yield Skip(chain_path([*parts, name]), f"unreadable: {exc.strerror}", True)
                continue
            with handle:
                walk.count_entry()
                size = os.fstat(handle.fileno()).st_size
                member = [*parts, name]
                yield from walk.member(member, depth, opener_of(handle), size, handle, extra)


def image_blobs(name: str, limits: Limits | None = None) -> Iterator[Blob | Skip]:
    """The Blobs of the image `name`: a saved tarball, an OCI layout directory, or an image
    that `docker save` (else `skopeo`) writes to a private temporary directory first."""
    limits = limits or current()
    if os.path.isdir(name):
        tree = _DirTree(name)
        layout = _layout(set(tree.names()))
        if layout is None:
            raise InputError(f"--image {name}: a directory, but not an OCI image layout")
        size = sum(os.path.getsize(os.path.join(name, n)) for n in tree.names())
        walk = Walk(Blob(name, b""), limits, size)
        yield from _guarded(walk, walk_image(walk, tree, layout, [name], 1, {}))
    elif os.path.isfile(name):
        yield from _image_file(name, name, limits)
    else:
        with _saved(name) as path:
            yield from _image_file(path, name, limits)


def _guarded(walk: Walk, items: Iterator[Blob | Skip]) -> Iterator[Blob | Skip]:
    from keysentry.scanner.sources.archives import LimitReached

    try:
        yield from items
    except LimitReached as exc:
        yield Skip(walk.top, f"not fully scanned: {exc.reason}", unreadable=True)


def _image_file(path: str, shown: str, limits: Limits) -> Iterator[Blob | Skip]:
    with open(path, "rb") as handle:
        kind = kind_of(handle.read(512))
        handle.seek(0)
        if kind is None:
            raise InputError(f"--image {shown}: not an image tarball (no tar or archive magic)")
        walk = Walk(Blob(shown, b""), limits, os.fstat(handle.fileno()).st_size)
        yield from walk.root(handle, kind, None)


@contextmanager
def _saved(name: str) -> Iterator[str]:
    """The image `name` saved to a tarball by docker, else skopeo; a one-line error if
    neither is installed or the save fails."""
    if name.startswith("-"):
        raise InputError(f"--image {name}: not an image name")
    docker, skopeo = shutil.which("docker"), shutil.which("skopeo")
    if docker is None and skopeo is None:
        raise InputError(
            f"--image {name}: neither docker nor skopeo is installed; save the image "
            "(`docker save NAME -o image.tar`) and pass the file"
        )
    with tempfile.TemporaryDirectory(prefix="keysentry-image-") as directory:
        path = os.path.join(directory, "image.tar")
        if docker is not None:
            command = [docker, "save", "-o", path, name]
        else:
            assert skopeo is not None
            command = [skopeo, "copy", f"docker://{name}", f"docker-archive:{path}"]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            why = scrub(lines[-1])[:300] if lines else f"exit {done.returncode}"
            raise InputError(f"--image {name}: {os.path.basename(command[0])} failed: {why}")
        yield path
