"""Sandbox images, built locally without a registry.

The base image's tag is a hash of its recipe (`images/base/`), so a changed recipe builds a
new image and an unchanged one is never rebuilt. Two ways to build it:
- `debootstrap` (no registry needed; this machine and air-gapped sites): a minbase Debian
  bookworm root filesystem with the packages in `packages.txt`, a `sandbox` user (uid 1000)
  and the init, imported with `docker import` (about 40 s, most of it debootstrap);
- `dockerfile` (a registry is reachable): `docker build` of `images/base/Dockerfile`.
A scenario may name any local image, or a Dockerfile of its own (`FROM` the base image to
build offline); that one is tagged by the hash of its folder and built once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from trialrun.sandbox.backend import SandboxFault, SandboxSpec, SandboxUnavailable

REPO = "trialrun-sandbox"
BASE_DIR = Path(__file__).parent / "images" / "base"
SUITE = "bookworm"
# Files of the debootstrap root that the sandbox never needs (about 140 MB of 275 MB).
_TRIM = ["var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
         "usr/share/locale", "usr/share/info"]
_IMPORT_CHANGES = [
    "USER 1000:1000",
    "WORKDIR /workspace",
    "ENV HOME=/workspace LANG=C.UTF-8 TMPDIR=/tmp PYTHONDONTWRITEBYTECODE=1 "
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    'CMD ["/usr/local/sbin/trialrun-init", "86400"]',
]


def packages() -> list[str]:
    lines = (BASE_DIR / "packages.txt").read_text().splitlines()
    return [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]


def _hash_dir(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def default_image() -> str:
    """The base image's tag: `trialrun-sandbox:<recipe hash>`."""
    h = hashlib.sha256((_hash_dir(BASE_DIR) + "\n".join(_IMPORT_CHANGES) + SUITE).encode())
    return f"{REPO}:{h.hexdigest()[:12]}"


def image_exists(name: str) -> bool:
    import docker.errors

    from trialrun.sandbox.docker_backend import client

    try:
        client().images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


Log = Callable[[str], None]


def build_base_image(method: str = "auto", force: bool = False, mirror: str | None = None,
                     log: Log = print) -> str:
    """Build the base image unless it exists; return its tag (also tagged `:latest`)."""
    tag = default_image()
    if not force and image_exists(tag):
        log(f"{tag} is up to date")
        return tag
    if method == "auto":
        method = "debootstrap" if shutil.which("debootstrap") and os.geteuid() == 0 \
            else "dockerfile"
    if method == "debootstrap":
        _build_debootstrap(tag, mirror, log)
    elif method == "dockerfile":
        _build_dockerfile(BASE_DIR, tag, log)
    else:
        raise ValueError(f"unknown build method {method!r}: auto, debootstrap or dockerfile")
    from trialrun.sandbox.docker_backend import client

    client().images.get(tag).tag(REPO, "latest")
    log(f"built {tag} (also {REPO}:latest)")
    return tag


def _build_debootstrap(tag: str, mirror: str | None, log: Log) -> None:
    if not shutil.which("debootstrap"):
        raise SandboxUnavailable("debootstrap is not installed (apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise SandboxUnavailable("debootstrap needs root")
    from trialrun.sandbox.docker_backend import client

    with tempfile.TemporaryDirectory(prefix="trialrun-rootfs-") as tmp:
        root = Path(tmp) / "root"
        cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(packages())}",
               SUITE, str(root)]
        if mirror:
            cmd.append(mirror)
        log("$ " + " ".join(cmd))
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            tail = (r.stdout + r.stderr)[-3000:]
            raise SandboxFault(f"debootstrap failed ({r.returncode}):\n{tail}")
        _finish_rootfs(root)
        log(f"importing {root} as {tag}")
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(root), "-c", "."],
                               stdout=subprocess.PIPE)
        try:
            repo, _, version = tag.partition(":")
            client().api.import_image(src=tar.stdout, repository=repo, tag=version,
                                      changes=_IMPORT_CHANGES)
        finally:
            tar.stdout.close()
            if tar.wait() != 0:
                raise SandboxFault("tar of the root filesystem failed")


def _finish_rootfs(root: Path) -> None:
    """Trim the root, add the sandbox user, its workspace and the init."""
    for rel in _TRIM:
        d = root / rel
        if d.is_dir():
            for entry in d.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
    etc = root / "etc"
    for name, line in (("passwd", "sandbox:x:1000:1000:trialrun sandbox:/workspace:/bin/sh"),
                       ("group", "sandbox:x:1000:"), ("shadow", "sandbox:*:19000:0:99999:7:::")):
        text = (etc / name).read_text()
        if not any(row.startswith("sandbox:") for row in text.splitlines()):
            (etc / name).write_text(text.rstrip("\n") + "\n" + line + "\n")
    ws = root / "workspace"
    ws.mkdir(exist_ok=True)
    os.chown(ws, 1000, 1000)
    init = root / "usr/local/sbin/trialrun-init"
    init.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(BASE_DIR / "trialrun-init", init)
    init.chmod(0o755)


def _build_dockerfile(context: Path, tag: str, log: Log, dockerfile: str = "Dockerfile") -> None:
    import docker.errors

    from trialrun.sandbox.docker_backend import client

    log(f"docker build {context} -t {tag}")
    try:
        # Build steps are the scenario author's, not the agent's: they may use the network.
        client().images.build(path=str(context), dockerfile=dockerfile, tag=tag, rm=True,
                              network_mode="host")
    except (docker.errors.BuildError, docker.errors.APIError) as e:
        raise SandboxFault(f"docker build of {context / dockerfile} failed: {e}") from e


_checked: set[str] = set()
_build_lock = threading.Lock()


def resolve_image(spec: SandboxSpec) -> str:
    """The image a docker sandbox starts from; builds a scenario's Dockerfile once."""
    if spec.dockerfile:
        path = Path(spec.dockerfile).expanduser().resolve()
        if not path.is_file():
            raise SandboxUnavailable(f"Dockerfile not found: {path}")
        tag = f"{REPO}-custom:{_hash_dir(path.parent)[:12]}"
        with _build_lock:
            if tag not in _checked and not image_exists(tag):
                _build_dockerfile(path.parent, tag, lambda _m: None, dockerfile=path.name)
            _checked.add(tag)
        return tag
    name = spec.image or default_image()
    if name not in _checked:
        if not image_exists(name):
            hint = ("build it with `trialrun sandbox build`" if spec.image is None
                    else "build or load it first (no registry is pulled from)")
            raise SandboxUnavailable(f"docker image {name!r} not found; {hint}")
        _checked.add(name)
    return name
