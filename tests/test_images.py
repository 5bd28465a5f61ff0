"""Container images: `docker save` tarballs and OCI layouts written here, layer by layer.

Each image is built as a registry would hold it: layers as tars (gzip-compressed for OCI, as
tools push them), a config with `Env` and `history`, a manifest, an index, and whiteouts where a
later layer deletes a file. The key a `.env` left in a layer that the next one deleted is still
in the image: it must be found with its layer and the build step that copied it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from pathlib import Path
from typing import Any

from conftest import CliResult
from keygen import key_of
from keysentry.scanner.keys import KeyKind

Layer = dict[str, bytes]  # path -> content; a `.wh.` name is a whiteout


def tar_of(files: Layer) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ImageBuilder:
    """An image's blobs: layers, config, manifest; written as an OCI layout or a docker save."""

    def __init__(self, layers: list[Layer], history: list[dict[str, Any]], env: list[str]):
        self.layer_tars = [tar_of(files) for files in layers]
        self.config = {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": env, "Cmd": ["python", "app.py"]},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{sha(t)}" for t in self.layer_tars]},
            "history": history,
        }

    def blobs(self, compress: bool) -> tuple[dict[str, bytes], str, list[str]]:
        blobs: dict[str, bytes] = {}
        layer_names = []
        for layer in self.layer_tars:
            data = gzip.compress(layer, mtime=0) if compress else layer
            blobs[f"blobs/sha256/{sha(data)}"] = data
            layer_names.append(f"blobs/sha256/{sha(data)}")
        config = json.dumps(self.config).encode()
        config_name = f"blobs/sha256/{sha(config)}"
        blobs[config_name] = config
        return blobs, config_name, layer_names

    def oci_files(self) -> dict[str, bytes]:
        blobs, config_name, layers = self.blobs(compress=True)
        media = "application/vnd.oci.image.layer.v1.tar+gzip"
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + config_name.rsplit("/", 1)[1],
                "size": len(blobs[config_name]),
            },
            "layers": [
                {
                    "mediaType": media,
                    "digest": "sha256:" + n.rsplit("/", 1)[1],
                    "size": len(blobs[n]),
                }
                for n in layers
            ],
        }
        manifest_data = json.dumps(manifest).encode()
        blobs[f"blobs/sha256/{sha(manifest_data)}"] = manifest_data
        index = {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": f"sha256:{sha(manifest_data)}",
                    "size": len(manifest_data),
                }
            ],
        }
        return {
            "oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
            "index.json": json.dumps(index).encode(),
            **blobs,
        }

    def docker_files(self) -> dict[str, bytes]:
        blobs, config_name, layers = self.blobs(compress=False)
        manifest = [{"Config": config_name, "RepoTags": ["app:1"], "Layers": layers}]
        return {**blobs, "manifest.json": json.dumps(manifest).encode()}

    def layer_digest(self, index: int, compress: bool) -> str:
        data = self.layer_tars[index]
        return "sha256:" + sha(gzip.compress(data, mtime=0) if compress else data)


def write_tar(path: Path, files: dict[str, bytes]) -> Path:
    path.write_bytes(tar_of(files))
    return path


def write_dir(path: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return path


def leaky_image(rng: random.Random) -> tuple[ImageBuilder, str, str, str]:
    """An image whose layer 2 copied a .env that layer 3 deleted, with a key in ENV and one in
    a RUN line's build argument."""
    dotenv = key_of(KeyKind.PROJECT, rng).key
    in_env = key_of(KeyKind.SERVICE_ACCOUNT, rng).key
    build_arg = key_of(KeyKind.ADMIN, rng).key
    layers = [
        {"etc/os-release": b"NAME=Debian\n", "usr/bin/true": b"\x7fELF\0\0"},
        {"app/.env": f"DEBUG=1\nOPENAI_API_KEY={dotenv}\n".encode(), "app/app.py": b"print(1)\n"},
        {"app/.wh..env": b""},
    ]
    history: list[dict[str, Any]] = [
        {"created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
        {"created_by": f"ENV OPENAI_API_KEY={in_env}", "empty_layer": True},
        {"created_by": "COPY .env app.py /app/ # buildkit"},
        {"created_by": f"RUN |1 ADMIN_KEY={build_arg} /bin/sh -c rm /app/.env # buildkit"},
    ]
    image = ImageBuilder(layers, history, ["PATH=/usr/bin", f"OPENAI_API_KEY={in_env}"])
    return image, dotenv, in_env, build_arg


def by_key(result: CliResult, key: str) -> list[dict[str, Any]]:
    from keysentry.scanner.findings import fingerprint

    return [f for f in result.json()["findings"] if f["fingerprint"] == fingerprint(key)]


def test_a_key_in_a_file_a_later_layer_deleted_is_found_with_its_layer_and_build_step(
    cli: Any, tmp_path: Path, rng: random.Random
) -> None:
    image, dotenv, _, _ = leaky_image(rng)
    layout = write_dir(tmp_path / "oci", image.oci_files())
    result = cli("scan", "--image", str(layout), "--format", "json")
    assert result.code == 1, result.err
    [found] = by_key(result, dotenv)
    digest = image.layer_digest(1, compress=True)
    assert found["path"] == f"{layout}!blobs/sha256/{digest[7:]}!app/.env"
    assert (found["line"], found["column"]) == (2, 16)
    assert found["image"] == {
        "layer": 2,
        "digest": digest,
        "step": 3,
        "created_by": "COPY .env app.py /app/ # buildkit",
        "deleted_in_layer": 3,
    }
    text = cli("scan", "--image", str(layout))
    assert "image layer 2 sha256:" in text.out
    step = (
        "(build step 3: COPY .env app.py /app/ # buildkit); deleted in layer 3, still in the image"
    )
    assert step in text.out


def test_env_and_build_arguments_in_the_image_config_are_found_with_their_step(
    cli: Any, tmp_path: Path, rng: random.Random
) -> None:
    image, _, in_env, build_arg = leaky_image(rng)
    layout = write_dir(tmp_path / "oci", image.oci_files())
    result = cli("scan", "--image", str(layout), "--format", "json")
    env_findings = {f["image"]["field"]: f for f in by_key(result, in_env)}
    assert set(env_findings) == {"config.Env[1]", "history[1]"}
    assert env_findings["config.Env[1]"]["image"]["step"] == 2
    assert env_findings["config.Env[1]"]["path"].endswith("!config.Env[1]")
    [arg] = by_key(result, build_arg)
    assert arg["image"]["field"] == "history[3]"
    assert arg["image"]["step"] == 4
    assert build_arg not in json.dumps(result.json()), "the build step is quoted scrubbed"


def test_a_docker_save_tarball_is_an_image_whether_given_to_scan_or_to_image(
    cli: Any, tmp_path: Path, rng: random.Random
) -> None:
    image, dotenv, _, _ = leaky_image(rng)
    saved = write_tar(tmp_path / "app.tar", image.docker_files())
    for args in (["--image", str(saved)], [str(saved)]):
        result = cli("scan", *args, "--format", "json")
        assert result.code == 1, result.err
        [found] = by_key(result, dotenv)
        assert found["image"]["layer"] == 2
        assert found["image"]["digest"] == image.layer_digest(1, compress=False)
        assert found["image"]["deleted_in_layer"] == 3


def test_an_oci_layout_tarball_is_an_image(cli: Any, tmp_path: Path, rng: random.Random) -> None:
    image, dotenv, _, _ = leaky_image(rng)
    archive = write_tar(tmp_path / "oci.tar", image.oci_files())
    result = cli("scan", str(archive), "--format", "json")
    [found] = by_key(result, dotenv)
    assert found["image"]["step"] == 3 and found["image"]["deleted_in_layer"] == 3


def test_an_opaque_directory_deletes_what_lower_layers_put_in_it(
    cli: Any, tmp_path: Path, rng: random.Random
) -> None:
    key = key_of(KeyKind.PROJECT, rng).key
    layers = [{"srv/conf/app.env": f"K={key}\n".encode()}, {"srv/conf/.wh..wh..opq": b""}]
    history = [{"created_by": "COPY conf /srv/conf"}, {"created_by": "RUN reset"}]
    image = ImageBuilder(layers, history, [])
    layout = write_dir(tmp_path / "oci", image.oci_files())
    [found] = by_key(cli("scan", "--image", str(layout), "--format", "json"), key)
    assert found["image"]["deleted_in_layer"] == 2


def test_a_clean_image_exits_0(cli: Any, tmp_path: Path) -> None:
    image = ImageBuilder([{"a.txt": b"hello\n"}], [{"created_by": "COPY a.txt /"}], ["A=1"])
    layout = write_dir(tmp_path / "oci", image.oci_files())
    result = cli("scan", "--image", str(layout))
    assert result.code == 0, result.err


def test_image_names_need_docker_or_skopeo_and_say_so_in_one_line(
    cli: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither docker nor skopeo
    result = cli("scan", "--image", "example/app:1")
    assert result.code == 2
    assert "neither docker nor skopeo is installed" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_image_does_not_combine_with_paths_or_git_modes(cli: Any, tmp_path: Path) -> None:
    assert cli("scan", "--image", "x", str(tmp_path)).code == 2
    assert cli("scan", "--image", "x", "--staged").code == 2


def test_a_directory_that_is_no_image_layout_is_an_error(cli: Any, tmp_path: Path) -> None:
    result = cli("scan", "--image", str(tmp_path))
    assert result.code == 2 and "not an OCI image layout" in result.err
