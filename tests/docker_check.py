#!/usr/bin/env python3
"""What can be checked of the Docker image without a Docker engine (ctest docker.image).

    tests/docker_check.py REPO_ROOT HOOKVAULT_BINARY

Dockerfile (docker/Dockerfile):
  - every COPY source from the build context exists and is not excluded by .dockerignore,
    and .dockerignore keeps the operator's docker/config/ and docker/secrets/ out of it;
  - every scripts/... it runs exists and is executable; the build stage runs
    scripts/install-deps and scripts/build, as scripts/test (CI) does; the binary the runtime
    stage copies is where that scripts/build call puts it;
  - the runtime stage is debian:12-slim, runs as a non-root USER, and its `apt-get install`
    list is exactly the packages rule below gives for `ldd HOOKVAULT_BINARY`;
  - HEALTHCHECK runs `hookvault healthcheck` (exec form, binary on PATH), with a Docker
    timeout longer than the subcommand's own; VOLUMEs hold state, config and /run/secrets.
compose.yaml (docker/compose.yaml):
  - the daemon and init services run with a read-only root, no capabilities and
    no-new-privileges; the daemon's stop_grace_period is at least the unit's TimeoutStopSec;
  - the build context and Dockerfile exist; bind-mounted folders and secret files either exist
    or are the operator's (docker/config/, docker/secrets/: ignored by git and by the build);
  - the service's secrets are exactly the /run/secrets/NAME files docker/hookvault.toml reads,
    and it mounts the image's state and config volumes; the init service writes the folder
    the daemon reads its config from.
compose.ha.yaml (docker/compose.ha.yaml: PostgreSQL, two instances, HAProxy):
  - every service runs with a read-only root, no capabilities (the PostgreSQL services add
    back only DAC_READ_SEARCH, SETUID and SETGID) and no-new-privileges; only haproxy
    publishes ports;
  - each hookvault service mounts config/ read-only and gets exactly the /run/secrets/NAME
    files docker/hookvault.ha.toml reads (sources and [storage] password_file), whose
    conninfo holds no password and names target_session_attrs=read-write; haproxy.cfg's
    servers are those services; build files, mounts and secret files exist or are the
    operator's.
docker/hookvault.toml, for real: `hookvault init` into a folder holding it keeps it and
creates every file it names, and with the secrets and state where compose puts them
(relocated into a temporary folder) `hookvault check-config` passes.

Exits 1 naming every problem found. `--self-test REPO_ROOT HOOKVAULT_BINARY` makes each
mistake of MISTAKES in a copy of the repository and checks that it is reported (ctest
docker.check_self_test).
"""

import fnmatch
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib

import yaml

# The package rule. Runtime packages = the Debian package (dpkg -S) of every library in
# `ldd hookvault` (the whole closure, transitive libraries included, so the list says
# everything the binary loads), minus BASE_PACKAGES, plus NON_LIBRARY_PACKAGES. The
# Dockerfile's list must equal it: a new library dependency fails here until the Dockerfile
# installs its package, and a package nothing needs any more fails until it is dropped.
#
# BASE_PACKAGES: packages of debian:12-slim (Priority: required, Essential) that ship
# libraries a C++ program links. Kept deliberately short: a package wrongly missing here
# costs a redundant apt-get line, one wrongly listed would ship an image that cannot start.
BASE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}
# Packages the runtime needs that no `ldd` line shows, each with its reason.
NON_LIBRARY_PACKAGES = {
    "ca-certificates": "the system trust store, for HTTPS to Nodit's history API",
}
# Never in the runtime image: the healthcheck is the binary's own subcommand.
FORBIDDEN_PACKAGES = {"curl", "wget"}
# The healthcheck subcommand's own default timeout (include/hookvault/healthcheck.hpp).
HEALTHCHECK_DEFAULT_TIMEOUT_S = 3
# Folders under docker/ that the operator creates (README, "Docker") and that must stay out
# of git and of the image's build context (offline: the keys init writes that the daemon
# never mounts).
OPERATOR_DIRS = ("docker/config", "docker/secrets", "docker/offline")

problems = []


def problem(text):
    problems.append(text)


# ---------------------------------------------------------------------------
# Dockerfile parsing: instructions with continuation lines joined, split into stages.

def instructions(path):
    out, current = [], ""
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if line.lstrip().startswith("#"):
                continue  # comments, also between continuation lines
            if line.endswith("\\"):
                current += line[:-1] + " "
                continue
            current += line
            if current.strip():
                keyword, _, rest = current.strip().partition(" ")
                out.append((keyword.upper(), rest.strip()))
            current = ""
    return out


def stages(instrs):
    result = []
    for keyword, rest in instrs:
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            result.append({"image": words[0], "name": name, "instrs": []})
        elif result:
            result[-1]["instrs"].append((keyword, rest))
    return result


def exec_form(rest):
    """["a", "b"] -> list, else None."""
    try:
        value = json.loads(rest)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) else None


def split_flags(rest):
    words = exec_form(rest) or shlex.split(rest)
    flags = [w for w in words if w.startswith("--")]
    args = [w for w in words if not w.startswith("--")]
    return flags, args


def dockerignore_patterns(root):
    path = os.path.join(root, ".dockerignore")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        lines = [l.strip() for l in f]
    return [l.rstrip("/") for l in lines if l and not l.startswith("#") and not l.startswith("!")]


def ignored(rel, patterns):
    """True when .dockerignore excludes `rel` or a folder above it (patterns are anchored at
    the context root, as Docker's are)."""
    parts = rel.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        prefix = "/".join(parts[:i])
        if any(fnmatch.fnmatchcase(prefix, p.lstrip("/")) for p in patterns):
            return True
    return False


# ---------------------------------------------------------------------------
# The package rule.

@functools.lru_cache(maxsize=None)
def package_of(lib):
    """The Debian package that owns `lib` (tries the path, its target, and the /lib <-> /usr/lib
    twin of each: Debian 12 is merged-/usr, dpkg knows one spelling)."""
    candidates = []
    for p in (lib, os.path.realpath(lib)):
        candidates.append(p)
        if p.startswith("/usr/lib/"):
            candidates.append(p[len("/usr"):])
        elif p.startswith("/lib/"):
            candidates.append("/usr" + p)
    for c in candidates:
        r = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True)
        if r.returncode == 0:
            for line in r.stdout.splitlines():
                if line.startswith("diversion "):
                    continue
                return line.split(":", 1)[0].split(",")[0].strip()
    return None


def needed_packages(binary):
    r = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if r.returncode != 0:
        problem(f"ldd {binary} failed: {r.stderr.strip()}")
        return {}
    needed = {}
    for line in r.stdout.splitlines():
        line = line.strip()
        if "not found" in line:
            problem(f"ldd {binary}: {line}")
            continue
        m = re.match(r"(\S+) => (/\S+) \(0x", line) or re.match(r"(/\S+) \(0x", line)
        if not m:
            continue  # linux-vdso.so.1 and the like: no file
        lib = m.group(2) if m.lastindex == 2 else m.group(1)
        pkg = package_of(lib)
        if pkg is None:
            problem(f"no Debian package owns {lib} (dpkg -S): the runtime image cannot get it")
            continue
        needed.setdefault(pkg, []).append(os.path.basename(lib))
    return needed


def apt_packages(stage):
    found = []
    for keyword, rest in stage["instrs"]:
        if keyword != "RUN" or "apt-get install" not in rest:
            continue
        for command in re.split(r"&&|;", rest):
            words = command.split()
            if "apt-get" in words and "install" in words:
                after = words[words.index("install") + 1:]
                found += [w for w in after if not w.startswith("-")]
    return found


# ---------------------------------------------------------------------------

def check_dockerfile(root, binary):
    dockerfile = os.path.join(root, "docker/Dockerfile")
    all_stages = stages(instructions(dockerfile))
    if len(all_stages) < 2:
        problem("docker/Dockerfile: expected a build stage and a runtime stage")
        return {}
    patterns = dockerignore_patterns(root)
    for d in OPERATOR_DIRS:
        if not ignored(d, patterns):
            problem(f".dockerignore does not exclude {d}/: the operator's files would reach "
                    "the build context")

    by_name = {s["name"]: s for s in all_stages if s["name"]}
    for stage in all_stages:
        for keyword, rest in stage["instrs"]:
            if keyword in ("COPY", "ADD"):
                flags, args = split_flags(rest)
                if any(f.startswith("--from") for f in flags):
                    continue
                for src in args[:-1]:
                    if src == ".":
                        continue
                    if not os.path.exists(os.path.join(root, src)):
                        problem(f"Dockerfile: {keyword} {src}: no such file in the repository")
                    elif ignored(src, patterns):
                        problem(f"Dockerfile: {keyword} {src}: excluded by .dockerignore")
            if keyword == "RUN":
                for script in re.findall(r"(?<![\w/])(scripts/[\w.-]+)", rest):
                    path = os.path.join(root, script)
                    if not os.path.isfile(path) or not os.access(path, os.X_OK):
                        problem(f"Dockerfile: RUN {script}: no such executable in the repository")

    # The build stage: CI's own scripts, and the binary where scripts/build puts it.
    build = by_name.get("build")
    if build is None:
        problem("Dockerfile: no stage named build")
    else:
        runs = " && ".join(r for k, r in build["instrs"] if k == "RUN")
        with open(os.path.join(root, "scripts/test"), encoding="utf-8") as f:
            ci = f.read()
        for script in ("scripts/install-deps", "scripts/build"):
            if script not in runs:
                problem(f"Dockerfile: the build stage does not run {script}")
            if script not in ci:
                problem(f"scripts/test (CI) does not run {script}: the image would build "
                        "differently")
        workdir = next((r for k, r in build["instrs"] if k == "WORKDIR"), "/")
        m = re.search(r"scripts/build\s+(\S+)", runs)
        built = os.path.join(workdir, m.group(1) if m else "build", "hookvault")

    runtime = all_stages[-1]
    if runtime["image"] != "debian:12-slim":
        problem(f"Dockerfile: the runtime stage is {runtime['image']}, not debian:12-slim")
    copied = []
    for keyword, rest in runtime["instrs"]:
        if keyword == "COPY":
            flags, args = split_flags(rest)
            if "--from=build" in flags:
                copied.append((args[0], args[-1]))
    if build is not None and not any(src == built for src, _ in copied):
        problem(f"Dockerfile: the runtime stage does not copy {built}, which the build stage's "
                "scripts/build writes")
    on_path = any(dst in ("/usr/local/bin/hookvault", "/usr/bin/hookvault") for _, dst in copied)
    if not on_path:
        problem("Dockerfile: hookvault is not copied to /usr/local/bin or /usr/bin (PATH), so "
                "HEALTHCHECK's `hookvault` would not be found")

    users = [r for k, r in runtime["instrs"] if k == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problem("Dockerfile: the runtime stage does not run as a non-root USER")

    # Packages: exactly the rule's list.
    needed = needed_packages(binary)
    expected = (set(needed) - BASE_PACKAGES) | set(NON_LIBRARY_PACKAGES)
    installed = apt_packages(runtime)
    if len(installed) != len(set(installed)):
        problem(f"Dockerfile: the runtime apt-get install lists a package twice: {installed}")
    for pkg in sorted(expected - set(installed)):
        why = (f"for {', '.join(needed[pkg])}" if pkg in needed else NON_LIBRARY_PACKAGES[pkg])
        problem(f"Dockerfile: the runtime stage does not install {pkg} ({why}); add it to its "
                "apt-get install")
    for pkg in sorted(set(installed) - expected):
        if pkg in FORBIDDEN_PACKAGES:
            problem(f"Dockerfile: the runtime stage installs {pkg}; the HEALTHCHECK needs no "
                    "HTTP client")
        elif pkg in BASE_PACKAGES:
            problem(f"Dockerfile: the runtime stage installs {pkg}, already in debian:12-slim")
        else:
            problem(f"Dockerfile: the runtime stage installs {pkg}, which `ldd hookvault` "
                    "does not need; drop it (or give it a reason in NON_LIBRARY_PACKAGES)")

    # HEALTHCHECK.
    checks = [r for k, r in runtime["instrs"] if k == "HEALTHCHECK"]
    if len(checks) != 1:
        problem(f"Dockerfile: the runtime stage has {len(checks)} HEALTHCHECK lines, not 1")
    else:
        m = re.search(r"\bCMD\s+(.*)$", checks[0])
        argv = exec_form(m.group(1)) if m else None
        if not argv or os.path.basename(argv[0]) != "hookvault" or argv[1:2] != ["healthcheck"]:
            problem(f"Dockerfile: HEALTHCHECK is not CMD [\"hookvault\", \"healthcheck\", ...] in "
                    f"exec form: {checks[0]}")
        t = re.search(r"--timeout=(\d+)s", checks[0])
        if t and int(t.group(1)) <= HEALTHCHECK_DEFAULT_TIMEOUT_S and "--timeout" not in argv:
            problem(f"Dockerfile: HEALTHCHECK --timeout={t.group(1)}s does not leave the "
                    f"subcommand its {HEALTHCHECK_DEFAULT_TIMEOUT_S}s")

    # Volumes and the config the binary reads by default.
    volumes = set()
    for keyword, rest in runtime["instrs"]:
        if keyword == "VOLUME":
            volumes |= set(exec_form(rest) or rest.split())
    for v in ("/var/lib/hookvault", "/etc/hookvault", "/run/secrets"):
        if v not in volumes:
            problem(f"Dockerfile: no VOLUME {v}")
    env = " ".join(r for k, r in runtime["instrs"] if k == "ENV")
    m = re.search(r"HOOKVAULT_CONFIG[= ](\S+)", env)
    config_path = m.group(1) if m else None
    if config_path is None or os.path.dirname(config_path) not in volumes:
        problem("Dockerfile: ENV HOOKVAULT_CONFIG does not name a file in a VOLUME")
    return {"volumes": volumes, "config_path": config_path}


def gitignored(root, rel):
    """`rel` (a path in the repository, which need not exist) is ignored by git."""
    r = subprocess.run(["git", "-C", root, "check-ignore", "-q", rel], capture_output=True)
    if r.returncode == 128:  # not a git checkout (e.g. an exported tree): nothing to check
        return True
    return r.returncode == 0


def check_compose(root, image):
    compose_dir = os.path.join(root, "docker")
    with open(os.path.join(compose_dir, "compose.yaml"), encoding="utf-8") as f:
        compose = yaml.safe_load(f)
    with open(os.path.join(compose_dir, "hookvault.toml"), "rb") as f:
        config = tomllib.load(f)
    patterns = dockerignore_patterns(root)

    def operator_path(src, what):
        """A host path of compose.yaml: it exists, or lies in an operator folder that git and
        the build context both ignore."""
        rel = os.path.relpath(os.path.normpath(os.path.join(compose_dir, src)), root)
        if os.path.exists(os.path.join(root, rel)):
            return rel
        if not any(rel == d or rel.startswith(d + "/") for d in OPERATOR_DIRS):
            problem(f"compose.yaml: {what} {src} does not exist and is not in "
                    f"{' or '.join(OPERATOR_DIRS)} (the operator's folders)")
        elif not gitignored(root, rel + "/x") or not ignored(rel, patterns):
            problem(f"compose.yaml: {what} {src}: not ignored by both .gitignore and "
                    ".dockerignore")
        return rel

    services = compose.get("services", {})
    daemon = services.get("hookvault")
    if daemon is None:
        problem("compose.yaml: no service hookvault")
        return
    build = daemon.get("build", {})
    context = os.path.normpath(os.path.join(compose_dir, build.get("context", ".")))
    if os.path.realpath(context) != os.path.realpath(root):
        problem(f"compose.yaml: build context {build.get('context')} is not the repository root")
    if not os.path.isfile(os.path.join(context, build.get("dockerfile", "Dockerfile"))):
        problem(f"compose.yaml: no Dockerfile {build.get('dockerfile')} in the build context")

    def mounts(service):
        out = {}
        for v in service.get("volumes", []):
            parts = v.split(":")
            out[parts[1]] = (parts[0], parts[2:] == ["ro"])
        return out

    declared = set((compose.get("volumes") or {}).keys())
    for name, service in services.items():
        for target, (src, _) in mounts(service).items():
            if src.startswith(".") or src.startswith("/"):
                operator_path(src, f"service {name} mounts")
            elif src not in declared:
                problem(f"compose.yaml: service {name} mounts volume {src}, not declared")
    check_hardening(root, services)
    m = mounts(daemon)
    config_dir = os.path.dirname(image.get("config_path") or "/etc/hookvault/hookvault.toml")
    for target in ("/var/lib/hookvault", config_dir):
        if target not in m:
            problem(f"compose.yaml: service hookvault does not mount {target} (a VOLUME of "
                    "the image)")
    init = services.get("init")
    if init is None:
        problem("compose.yaml: no init service to create the config folder")
    else:
        command = init.get("command", [])
        if command[:1] != ["init"] or "--dir" not in command:
            problem(f"compose.yaml: service init does not run `hookvault init --dir`: {command}")
        else:
            init_dir = command[command.index("--dir") + 1]
            init_mounts = mounts(init)
            if init_dir != config_dir or init_dir not in init_mounts or init_mounts[init_dir][1]:
                problem(f"compose.yaml: init writes {init_dir}, not a writable mount of the "
                        f"daemon's config folder {config_dir}")
            elif config_dir in m and init_mounts[init_dir][0] != m[config_dir][0]:
                problem("compose.yaml: init and hookvault mount different config folders")

    # Secrets: each compose secret is a file the config reads from /run/secrets, and back.
    top = compose.get("secrets") or {}
    for name, spec in top.items():
        if "file" in spec:
            operator_path(spec["file"], f"secret {name}:")
    used = set(daemon.get("secrets", []))
    for name in used - set(top):
        problem(f"compose.yaml: service hookvault uses secret {name}, not declared")
    wanted = set()
    for source in config.get("sources", []):
        for f in source.get("secret_files", []):
            if not f.startswith("/run/secrets/"):
                problem(f"docker/hookvault.toml: source {source.get('name')} reads {f}, not a "
                        "Docker secret under /run/secrets/")
            else:
                wanted.add(f[len("/run/secrets/"):])
    for name in sorted(wanted - used):
        problem(f"compose.yaml: docker/hookvault.toml reads /run/secrets/{name}, which service "
                "hookvault does not get as a secret")
    for name in sorted(used - wanted):
        problem(f"compose.yaml: secret {name} is given to hookvault but docker/hookvault.toml "
                "never reads it")
    if not str(config.get("storage", {}).get("path", "")).startswith("/var/lib/hookvault/"):
        problem("docker/hookvault.toml: [storage] path is not in the state volume "
                "/var/lib/hookvault")
    return sorted(wanted)


HA_CAPS = {"db": {"DAC_READ_SEARCH", "SETUID", "SETGID"}}  # service-name prefix: cap_add allowed


def check_compose_ha(root):
    compose_dir = os.path.join(root, "docker")
    with open(os.path.join(compose_dir, "compose.ha.yaml"), encoding="utf-8") as f:
        compose = yaml.safe_load(f)
    with open(os.path.join(compose_dir, "hookvault.ha.toml"), "rb") as f:
        config = tomllib.load(f)
    where = "compose.ha.yaml"

    def host_path(src, what):
        rel = os.path.relpath(os.path.normpath(os.path.join(compose_dir, src)), root)
        if not os.path.exists(os.path.join(root, rel)) and \
                not any(rel == d or rel.startswith(d + "/") for d in OPERATOR_DIRS):
            problem(f"{where}: {what} {src} does not exist and is not in "
                    f"{' or '.join(OPERATOR_DIRS)} (the operator's folders)")

    wanted = set()
    for source in config.get("sources", []):
        wanted.update(source.get("secret_files", []))
    storage = config.get("storage", {})
    if storage.get("password_file"):
        wanted.add(storage["password_file"])
    for f in sorted(wanted):
        if not f.startswith("/run/secrets/"):
            problem(f"docker/hookvault.ha.toml: reads {f}, not a Docker secret under /run/secrets/")
    wanted = {f[len("/run/secrets/"):] for f in wanted if f.startswith("/run/secrets/")}
    conninfo = str(storage.get("conninfo", ""))
    if storage.get("backend") != "postgresql" or "target_session_attrs=read-write" not in conninfo:
        problem("docker/hookvault.ha.toml: [storage] is not PostgreSQL with "
                "target_session_attrs=read-write")
    if re.search(r"password\s*=|://[^/@]*:[^/@]*@", conninfo):
        problem("docker/hookvault.ha.toml: conninfo holds a password")

    top = compose.get("secrets") or {}
    for name, spec in top.items():
        if "file" in spec:
            host_path(spec["file"], f"secret {name}:")
    instances = []
    for name, service in (compose.get("services") or {}).items():
        if service.get("read_only") is not True:
            problem(f"{where}: service {name} is not read_only: true")
        if "ALL" not in (service.get("cap_drop") or []):
            problem(f"{where}: service {name} does not cap_drop ALL")
        allowed = next((caps for prefix, caps in HA_CAPS.items() if name.startswith(prefix)), set())
        extra = set(service.get("cap_add") or []) - allowed
        if extra:
            problem(f"{where}: service {name} adds capabilities {sorted(extra)}")
        if not any(str(o).replace("=", ":") == "no-new-privileges:true"
                   for o in service.get("security_opt") or []):
            problem(f"{where}: service {name} lacks security_opt no-new-privileges:true")
        if service.get("ports") and name != "haproxy":
            problem(f"{where}: service {name} publishes ports (only haproxy may)")
        build = service.get("build")
        if build and not os.path.isfile(os.path.join(compose_dir, build.get("context", "."),
                                                     build.get("dockerfile", "Dockerfile"))):
            problem(f"{where}: service {name}: no Dockerfile {build.get('dockerfile')}")
        mounts = {}
        for v in service.get("volumes", []):
            parts = v.split(":")
            mounts[parts[1]] = parts[0], parts[2:] == ["ro"]
            if parts[0].startswith("."):
                host_path(parts[0], f"service {name} mounts")
        for s in service.get("secrets", []):
            if s not in top:
                problem(f"{where}: service {name} uses secret {s}, not declared")
        command = service.get("command") or []
        if service.get("image") == "hookvault:latest" and "init" not in command:
            instances.append(name)
            if mounts.get("/etc/hookvault") != ("./config", True):
                problem(f"{where}: service {name} does not mount ./config read-only")
            used = set(service.get("secrets", []))
            for s in sorted(wanted - used):
                problem(f"{where}: docker/hookvault.ha.toml reads /run/secrets/{s}, which "
                        f"service {name} does not get as a secret")
            for s in sorted(used - wanted):
                problem(f"{where}: secret {s} is given to {name} but docker/hookvault.ha.toml "
                        "never reads it")
    with open(os.path.join(compose_dir, "haproxy.cfg"), encoding="utf-8") as f:
        servers = re.findall(r"^\s*server\s+\S+\s+([^:\s]+):8443\b", f.read(), re.M)
    if sorted(servers) != sorted(instances) or len(instances) < 2:
        problem(f"docker/haproxy.cfg: servers {servers}, the hookvault services {instances}")


def duration_seconds(text):
    """Compose durations ("30s", "1m30s", "500ms") in seconds; None when not one."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        return None
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 0.000001}
    return sum(float(n) * scale[u] for n, u in parts)


def check_hardening(root, services):
    """The daemon and init containers: read-only root, no capabilities, no-new-privileges
    (scripts/test-docker checks them in the running container too); the daemon gets as long
    to drain on `docker compose stop` as the systemd unit gets (TimeoutStopSec=)."""
    for name in ("hookvault", "init"):
        service = services.get(name) or {}
        if service.get("read_only") is not True:
            problem(f"compose.yaml: service {name} is not read_only: true")
        if "ALL" not in (service.get("cap_drop") or []):
            problem(f"compose.yaml: service {name} does not cap_drop ALL")
        if not any(str(o).replace("=", ":") == "no-new-privileges:true"
                   for o in service.get("security_opt") or []):
            problem(f"compose.yaml: service {name} lacks security_opt no-new-privileges:true")
    with open(os.path.join(root, "config/hookvault.service"), encoding="utf-8") as f:
        m = re.search(r"^TimeoutStopSec=(\S+)", f.read(), re.M)
    unit_stop = duration_seconds(m.group(1)) if m else None
    grace = (services.get("hookvault") or {}).get("stop_grace_period")
    if unit_stop is None:
        problem("config/hookvault.service: no TimeoutStopSec= to compare compose's "
                "stop_grace_period with")
    elif grace is None or duration_seconds(grace) is None or duration_seconds(grace) < unit_stop:
        problem(f"compose.yaml: service hookvault's stop_grace_period ({grace}) is shorter than "
                f"the unit's TimeoutStopSec ({unit_stop:g}s): `docker compose stop` would kill "
                "a daemon that is still draining")


def check_config_for_real(root, binary, secret_names):
    """init keeps docker/hookvault.toml and creates what it names; check-config then passes."""
    tmp = tempfile.mkdtemp(prefix="hookvault-docker-")
    try:
        etc = os.path.join(tmp, "etc")
        os.makedirs(etc, mode=0o700)
        shutil.copy(os.path.join(root, "docker/hookvault.toml"), os.path.join(etc, "hookvault.toml"))
        r = subprocess.run([binary, "init", "--dir", etc], capture_output=True, text=True)
        if r.returncode != 0:
            problem(f"hookvault init into the Docker config folder failed: {r.stderr.strip()}")
            return
        if "kept existing hookvault.toml" not in r.stdout:
            problem("hookvault init did not keep the Docker hookvault.toml")
        config_file = os.path.join(etc, "hookvault.toml")
        with open(config_file, encoding="utf-8") as f:
            text = f.read()
        secrets_dir = os.path.join(tmp, "run/secrets")
        state_dir = os.path.join(tmp, "state")
        os.makedirs(secrets_dir, mode=0o700)
        os.makedirs(state_dir, mode=0o700)
        text = text.replace('"/run/secrets/', f'"{secrets_dir}/')
        text = text.replace('"/var/lib/hookvault/', f'"{state_dir}/')
        with open(config_file, "w", encoding="utf-8") as f:
            f.write(text)
        for name in secret_names:
            fd = os.open(os.path.join(secrets_dir, name), os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, os.urandom(16).hex().encode())
            os.close(fd)
        r = subprocess.run([binary, "check-config", "--config", config_file],
                           capture_output=True, text=True)
        if r.returncode != 0:
            problem("hookvault check-config refuses docker/hookvault.toml after init: "
                    + r.stderr.strip().replace("\n", "; "))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_checks(root, binary, with_config=True):
    problems.clear()
    image = check_dockerfile(root, binary)
    secret_names = check_compose(root, image)
    check_compose_ha(root)
    if secret_names is not None and with_config:
        check_config_for_real(root, binary, secret_names)
    return list(problems)


# --self-test: each mistake, made in a copy of the repository, must be reported.
MISTAKES = [
    ("a library the binary links is not installed (as when a dependency is added)",
     "docker/Dockerfile", " libtomlplusplus3 ", " ",
     "does not install libtomlplusplus3 (for libtomlplusplus.so.3)"),
    ("curl in the runtime image", "docker/Dockerfile", "ca-certificates libacl1 libcap2",
     "ca-certificates curl libcap2",
     "installs curl"),
    ("a package nothing needs", "docker/Dockerfile", "ca-certificates libacl1 libcap2",
     "ca-certificates libxml2 libcap2", "installs libxml2, which `ldd hookvault` does not need"),
    ("a HEALTHCHECK with another command", "docker/Dockerfile", '"hookvault", "healthcheck"',
     '"wget", "-q"', "HEALTHCHECK is not"),
    ("a COPY of a missing file", "docker/Dockerfile", "COPY docker/hookvault.toml",
     "COPY docker/hookvault.docker.toml", "COPY docker/hookvault.docker.toml: no such file"),
    ("a script that does not exist", "docker/Dockerfile", "RUN scripts/install-deps",
     "RUN scripts/install-packages", "RUN scripts/install-packages: no such executable"),
    ("running as root", "docker/Dockerfile", "USER hookvault:hookvault", "USER root",
     "does not run as a non-root USER"),
    ("a secret the config reads but compose does not give", "docker/compose.yaml",
     "      - nodit_signing_key\n", "",
     "reads /run/secrets/nodit_signing_key, which service hookvault does not get"),
    ("a secret file outside the operator's folders", "docker/compose.yaml",
     "file: ./secrets/nodit_signing_key", "file: ./nodit_signing_key",
     "does not exist and is not in"),
    ("a writable root file system", "docker/compose.yaml", "    read_only: true\n", "",
     "service hookvault is not read_only: true"),
    ("Docker's default stop timeout (10 s) for a daemon that drains longer",
     "docker/compose.yaml", "stop_grace_period: 30s", "stop_grace_period: 10s",
     "stop_grace_period (10s) is shorter than the unit's TimeoutStopSec (30s)"),
    ("another capability for a PostgreSQL container", "docker/compose.ha.yaml",
     "cap_add: [DAC_READ_SEARCH, SETUID, SETGID]", "cap_add: [DAC_OVERRIDE, SETUID, SETGID]",
     "service db1 adds capabilities ['DAC_OVERRIDE']"),
    ("an instance without the database password", "docker/compose.ha.yaml",
     "    - nodit_signing_key\n    - pg_password\n", "    - nodit_signing_key\n",
     "reads /run/secrets/pg_password, which service hookvault1 does not get"),
    ("the database password in conninfo", "docker/hookvault.ha.toml",
     "user=hookvault target_session_attrs", "user=hookvault password=x target_session_attrs",
     "conninfo holds a password"),
    ("a secret from the config folder instead of /run/secrets", "docker/hookvault.toml",
     '"/run/secrets/dynamic_webhook_secret"', '"secrets/dynamic_webhook_secret"',
     "not a Docker secret under /run/secrets/"),
]


def self_test(root, binary):
    failures = []
    def ignore(folder, names):  # build output, git and local setups stay behind
        top = os.path.samefile(folder, root)
        return [n for n in names if n == "node_modules" or
                (top and (n.startswith("build") or n in (".git", "var")))]

    for what, rel, old, new, expected in MISTAKES:
        tmp = tempfile.mkdtemp(prefix="hookvault-docker-self-")
        try:
            copy = os.path.join(tmp, "repo")
            shutil.copytree(root, copy, ignore=ignore, symlinks=True)
            path = os.path.join(copy, rel)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            if old not in text:
                failures.append(f"{what}: {rel} no longer contains {old!r}; update MISTAKES")
                continue
            with open(path, "w", encoding="utf-8") as f:
                f.write(text.replace(old, new, 1))
            found = run_checks(copy, binary, with_config=False)
            if not any(expected in p for p in found):
                failures.append(f"{what}: not reported (expected {expected!r}; got {found})")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    for f in failures:
        print(f)
    if failures:
        return 1
    print(f"docker check self-test ok: {len(MISTAKES)} mistakes reported")
    return 0


def main():
    args = sys.argv[1:]
    test_mode = bool(args) and args[0] == "--self-test"
    if test_mode:
        args = args[1:]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    root, binary = os.path.abspath(args[0]), os.path.abspath(args[1])
    if test_mode:
        return self_test(root, binary)
    found = run_checks(root, binary)
    for p in found:
        print(p)
    if found:
        return 1
    print("docker checks ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
