"""Image names -> what the test kubelet runs (there is no registry and no image store).

* ``*nginx*``: nginx from the host in the foreground, with a generated config like the official image's
  (listen 80, 2 workers, access log to stdout, error log to stderr); config, pid file and temp dirs live on
  tmpfs mounts inside the container so the host's files are never touched.
* a name containing ``nosuch``: cannot be pulled (ErrImagePull / ImagePullBackOff / ErrImageNeverPull with
  the messages recorded from containerd 1.6).
* a name containing ``distroless``: like Google's distroless python images (gcr.io/distroless/python3), a
  filesystem with python3 and its libraries but no shell, tar or coreutils: every directory of programs
  (/usr/bin, /usr/sbin, /usr/local/bin, /usr/local/sbin, and /bin, /sbin where they are not links) is an
  empty tmpfs in the container's view, but for /usr/bin/python3, the host's interpreter bound read-only.
  The default command is python3 (the image's entrypoint).
  Its /etc/passwd is distroless' own (root 0:0, nobody 65534:65534, nonroot 65532:65532), as the real images
  ship it: a container that sets runAsUser but not runAsGroup takes its primary gid from there.
* anything else: the container's command/args run from the host's filesystem (and its /etc/passwd).

Primary group: when a pod sets runAsUser without runAsGroup, containerd/runc (and Docker) take the gid from
the *image's* /etc/passwd entry of that uid, else 0 (recordings 30-gid-*: debug image, uid 65532 -> gid 0;
distroless, uid 65532 -> gid 65532).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import sys
from dataclasses import dataclass, field

NGINX_CONF = """\
user {user};
worker_processes 2;
error_log stderr notice;
pid /run/nginx.pid;

events {{
    worker_connections 1024;
}}

http {{
    default_type application/octet-stream;
    types {{
        text/html html htm;
        text/plain txt;
    }}
    log_format main '$remote_addr - $remote_user [$time_local] "$request" '
                    '$status $body_bytes_sent "$http_referer" "$http_user_agent"';
    access_log /dev/stdout main;
    sendfile on;
    keepalive_timeout 65;
    client_body_temp_path /var/cache/nginx/client_temp;
    proxy_temp_path /var/cache/nginx/proxy_temp;
    fastcgi_temp_path /var/cache/nginx/fastcgi_temp;
    uwsgi_temp_path /var/cache/nginx/uwsgi_temp;
    scgi_temp_path /var/cache/nginx/scgi_temp;

    server {{
        listen 80;
        server_name localhost;
        location / {{
            root /usr/share/nginx/html;
            index index.html index.htm;
        }}
    }}
}}
"""


class ImagePullError(Exception):
    """The image cannot be pulled; reason/message as the kubelet reports them."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class ImagePlan:
    """What to run for a container: argv, extra tmpfs mounts and files written before the exec."""

    argv: list[str]
    image: str  # status.image (normalized like containerd: docker.io/library/nginx:1.27)
    image_id: str  # status.imageID
    tmpfs: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    binds: dict[str, str] = field(default_factory=dict)  # container path -> host file, read-only
    passwd: str | None = None  # the image's own /etc/passwd; None: the host's, which the container sees


# gcr.io/distroless/base-debian12's /etc/passwd
DISTROLESS_PASSWD = """\
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
"""


def image_passwd(image: str) -> str | None:
    return DISTROLESS_PASSWD if "distroless" in image.lower() else None


def primary_gid(image: str, uid: int) -> int:
    """The gid a container of `image` running as `uid` gets when the pod names no runAsGroup: the image's
    /etc/passwd entry of uid, else 0 (containerd, runc and Docker alike; recordings 30-gid-*)."""
    passwd = image_passwd(image)
    if passwd is None:
        try:
            return pwd.getpwuid(uid).pw_gid
        except KeyError:
            return 0
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[2] == str(uid):
            return int(fields[3])
    return 0


def _elf_python() -> str:
    """The host's python3 as a binary: a pyenv shim or any other script on PATH needs a shell, which the
    distroless view does not have (and /root, where pyenv keeps its interpreters, is unreadable to uid 65532)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3", shutil.which("python3"), sys.executable):
        if candidate and os.path.exists(candidate):
            real = os.path.realpath(candidate)
            with open(real, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    return real
    raise RuntimeError("no python3 binary on this host for the distroless image")


def normalize(image: str) -> str:
    """Docker-style reference -> fully qualified (what containerd reports in status.image)."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        name += ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name or ("." not in first and ":" not in first and first != "localhost"):
        name = ("docker.io/library/" if "/" not in name else "docker.io/") + name
    return name + (("@" + digest) if digest else "")


def image_id(image: str) -> str:
    return "sha256:" + hashlib.sha256(normalize(image).encode()).hexdigest()


def pull_error(image: str, policy: str) -> ImagePullError | None:
    """The error a pull of this image gives (None when it can be 'pulled')."""
    if "nosuch" not in image:
        return None
    if policy == "Never":
        return ImagePullError(
            "ErrImageNeverPull", f'Container image "{image}" is not present with pull policy of Never')
    ref = normalize(image)
    host, _, rest = ref.partition("/")
    repo, _, tag = rest.rpartition(":")
    if host == "docker.io":
        cause = ("pull access denied, repository does not exist or may require authorization: server message: "
                 "insufficient_scope: authorization failed")
    else:
        scheme = "http" if host.startswith("localhost") or host.startswith("127.") else "https"
        cause = (f'failed to do request: Head "{scheme}://{host}/v2/{repo}/manifests/{tag}": '
                 "dial tcp 127.0.0.1:80: connect: connection refused")
    return ImagePullError(
        "ErrImagePull",
        f'failed to pull and unpack image "{ref}": failed to resolve reference "{ref}": {cause}')


def back_off_message(image: str, err: ImagePullError) -> str:
    return f'Back-off pulling image "{image}": ErrImagePull: {err.message}'


def _nginx_user() -> str:
    for user in ("nginx", "www-data", "nobody"):
        try:
            pwd.getpwnam(user)
            return user
        except KeyError:
            continue
    return "root"


def plan(container: dict) -> ImagePlan:
    """What to run for this container spec (Kubernetes semantics: command replaces the entrypoint, args the
    image's CMD)."""
    image = container.get("image") or ""
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    if "nginx" in image.lower():
        default = ["nginx", "-e", "stderr", "-g", "daemon off;"]  # -e: never open the compiled-in error log
        argv = command + args if command else (args or default)
        return ImagePlan(
            argv=argv, image=normalize(image), image_id=image_id(image),
            tmpfs=["/etc/nginx", "/var/cache/nginx"],
            files={"/etc/nginx/nginx.conf": NGINX_CONF.format(user=_nginx_user())},
        )
    if "distroless" in image.lower():
        argv = command + args if command else ["python3", *args]
        hidden = ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"]
        hidden += [d for d in ("/bin", "/sbin") if os.path.isdir(d) and not os.path.islink(d)]
        python = _elf_python()
        return ImagePlan(argv=argv, image=normalize(image), image_id=image_id(image), tmpfs=hidden,
                         binds={"/usr/bin/python3": python}, passwd=image_passwd(image))
    argv = command + args if command else (args or ["sh"])
    return ImagePlan(argv=argv, image=normalize(image), image_id=image_id(image))
