"""This repository as pre-commit installs it, in the tests and the hook benchmark: a snapshot of
the working tree as a git repo of its own, and what pre-commit needs to build the hook's
environment from it offline.

pre-commit builds a hook's environment as a user's machine does: a new virtualenv, then
`pip install .` of the hook repository, its build backend and its dependencies included. The
tests reach no index, so pip gets a wheelhouse instead: keysentry's runtime dependencies and
build backend, packed back into wheels from the distributions installed in the environment
under test (the versions that environment's own `pip install '.[test]'` chose). The hook's
environment is then a real, self-contained install, and nothing from the machine (its system
site-packages, pip configuration or caches) decides whether the tests pass.
"""

from __future__ import annotations

import base64
import csv
import email
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

PROJECT = Path(__file__).resolve().parent.parent

# Written by the installer, not part of a wheel (RECORD is written afresh).
INSTALLER_FILES = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def snapshot(dest: Path, git: list[str]) -> str:
    """Copy the tracked and untracked-but-not-ignored files to `dest`, commit them with the
    `git` command line given (identity and all), and return the commit id."""
    listed = subprocess.run(
        ["git", "-C", str(PROJECT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = PROJECT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "snapshot"]):
        subprocess.run([*git, "-C", str(dest), *args], check=True, capture_output=True)
    return subprocess.run(
        [*git, "-C", str(dest), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


def offline_install_env(wheels: Path) -> dict[str, str]:
    """Environment variables under which pre-commit builds a hook environment from `wheels`
    only: no index, no pip configuration file (a machine's own index or find-links would
    otherwise be used), no virtualenv update check."""
    return {
        "PIP_CONFIG_FILE": os.devnull,  # pip reads no configuration file at all
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "VIRTUALENV_NO_PERIODIC_UPDATE": "1",
        "VIRTUALENV_NO_DOWNLOAD": "1",
    }


def wheelhouse(dest: Path) -> Path:
    """Wheels of everything `pip install .` of this repository needs besides the repository
    itself (its build backend and its runtime dependencies, recursively), packed from the
    installed distributions of this interpreter. Returns `dest`."""
    pyproject = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))
    needed = [*pyproject["build-system"]["requires"], *pyproject["project"]["dependencies"]]
    dest.mkdir(parents=True, exist_ok=True)
    for dist in _closure(needed):
        _pack(dist, dest)
    return dest


def _closure(requirements: list[str]) -> list[metadata.Distribution]:
    """The installed distributions that satisfy `requirements` and their own, recursively,
    markers evaluated for this interpreter."""
    found: dict[str, metadata.Distribution] = {}
    pending = [Requirement(text) for text in requirements]
    while pending:
        requirement = pending.pop()
        extras = {"", *requirement.extras}
        if requirement.marker and not any(
            requirement.marker.evaluate({"extra": e}) for e in extras
        ):
            continue
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise RuntimeError(
                f"{requirement} is not installed in {sys.prefix}: pip install '.[test]'"
            ) from None
        if not requirement.specifier.contains(dist.version, prereleases=True):
            raise RuntimeError(f"{requirement} is needed, {name} {dist.version} is installed")
        found[name] = dist
        for text in dist.requires or []:
            nested = Requirement(text)
            if nested.marker is None or any(nested.marker.evaluate({"extra": e}) for e in extras):
                nested.marker = None  # evaluated here, with the extras it was asked with
                pending.append(nested)
    return list(found.values())


def _pack(dist: metadata.Distribution, dest: Path) -> Path:
    """Pack an installed distribution back into the wheel it was installed from: its files
    under site-packages (not scripts or data outside it: pip writes console scripts afresh from
    entry_points.txt), its metadata, and a RECORD of what the wheel holds."""
    files = dist.files
    if files is None:
        raise RuntimeError(f"{dist.metadata['Name']} has no RECORD: reinstall it with pip")
    info = next(f.parts[0] for f in files if f.parts[0].endswith(".dist-info"))
    wheel = email.message_from_string(dist.read_text("WHEEL") or "")
    tags = [tag.split("-") for tag in wheel.get_all("Tag") or []]
    if not tags:
        raise RuntimeError(f"{dist.metadata['Name']} has no WHEEL tags: reinstall it with pip")
    compressed = "-".join(".".join(dict.fromkeys(tag[i] for tag in tags)) for i in range(3))
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"]).lower()
    target = dest / f"{name}-{dist.version}-{compressed}.whl"
    record = io.StringIO()
    rows = csv.writer(record, lineterminator="\n")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in files:
            if ".." in file.parts or "__pycache__" in file.parts:
                continue
            if file.parts[0] == info and file.name in INSTALLER_FILES:
                continue
            data = Path(str(dist.locate_file(file))).read_bytes()
            archive.writestr(file.as_posix(), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            rows.writerow([file.as_posix(), f"sha256={digest.decode()}", len(data)])
        rows.writerow([f"{info}/RECORD", "", ""])
        archive.writestr(f"{info}/RECORD", record.getvalue())
    return target
