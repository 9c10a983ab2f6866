"""The Dockerfile, proven without a Docker engine: hadolint finds nothing, and the commands it runs work.

The commands are read from the Dockerfile itself (builder RUN, runtime CMD and HEALTHCHECK), so that a change
there that breaks them breaks this test. Paths of the image (`/wheels`, `/src`) live under a temporary root.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
BIN = Path(sys.executable).parent
STARTUP_SECONDS = 20.0
WHEEL_DATA = (
    "gateway/migrations/env.py",
    "gateway/migrations/script.py.mako",
    "gateway/migrations/versions/0001_initial_schema.py",
)


# --- reading the Dockerfile -------------------------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arguments for instruction, arguments in self.instructions if instruction == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"stage {self.name or self.base} has no {keyword}"
        return found[-1]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for arguments in self.all("ENV"):
            words = shlex.split(arguments)
            if all("=" in word for word in words):
                values.update(word.split("=", 1) for word in words)
            else:  # the legacy `ENV KEY value with spaces` form
                values[words[0]] = " ".join(words[1:])
        return values


def read_stages() -> list[Stage]:
    """FROM-separated stages of (INSTRUCTION, arguments), continuation lines joined, comment lines dropped."""
    stages: list[Stage] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comments, parser directives, and comment lines inside a continuation
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        pending = ""
        keyword, arguments = keyword.upper(), arguments.strip()
        if keyword == "FROM":
            base, _, name = arguments.partition(" AS ") if " AS " in arguments else arguments.partition(" as ")
            stages.append(Stage(base.strip(), name.strip() or None))
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, arguments))
    assert not pending, "the Dockerfile ends inside a continuation line"
    return stages


def builder_stage(stages: list[Stage]) -> Stage:
    named = [stage for stage in stages if stage.name == "builder"]
    assert named, "no stage named `builder`"
    return named[0]


def exec_form(arguments: str) -> list[str]:
    words = json.loads(arguments)
    assert isinstance(words, list), f"not the exec (JSON) form: {arguments}"
    return [str(word) for word in words]


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert parts, f"not a duration: {duration}"
    return sum(float(number) * units[unit] for number, unit in parts)


# --- the build context, as .dockerignore cuts it ----------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def _ignore_rules() -> list[tuple[bool, str, re.Pattern[str]]]:
    path = ROOT / ".dockerignore"
    rules = []
    for raw in path.read_text().splitlines() if path.exists() else []:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        rules.append((keep, pattern, _pattern_regex(pattern)))
    return rules


def build_context() -> Iterator[Path]:
    """Files Docker sends (moby's rule: a pattern matching a path or one of its parents; the last match wins)."""
    rules = _ignore_rules()

    def ignored(relative: str) -> bool:
        parts = relative.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        verdict = False
        for keep, _, regex in rules:
            if any(regex.fullmatch(prefix) for prefix in prefixes):
                verdict = not keep
        return verdict

    def may_reinclude(directory: str) -> bool:
        for keep, pattern, _ in rules:
            literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
            if keep and ((directory + "/").startswith(literal) or literal.startswith(directory + "/")):
                return True
        return False

    for here, directories, files in os.walk(ROOT):
        base = Path(here).relative_to(ROOT).as_posix()
        prefix = "" if base == "." else base + "/"
        directories[:] = [d for d in directories if not ignored(prefix + d) or may_reinclude(prefix + d)]
        for name in files:
            if not ignored(prefix + name):
                yield Path(here) / name


# --- running the builder stage ----------------------------------------------------------------------------------


@dataclass
class Built:
    rootfs: Path
    workdir: Path
    wheel: Path
    venv: str
    install: list[str]


def _in_rootfs(rootfs: Path, word: str) -> str:
    return str(rootfs / word.lstrip("/")) if word.startswith("/") else word


def _python(word: str) -> bool:
    return re.fullmatch(r"python(3(\.\d+)?)?", Path(word).name) is not None


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """COPY the (ignore-filtered) context and run the builder's RUN commands, image paths mapped into a temp root."""
    stage = builder_stage(read_stages())
    rootfs = tmp_path_factory.mktemp("rootfs")
    workdir = rootfs / stage.last("WORKDIR").lstrip("/")
    workdir.mkdir(parents=True)
    context = list(build_context())
    for instruction, arguments in stage.instructions:
        if instruction != "COPY":
            continue
        *sources, destination = shlex.split(arguments)
        assert not any(source.startswith("--") for source in sources), f"unexpected COPY option: {arguments}"
        target = workdir / destination if not destination.startswith("/") else rootfs / destination.lstrip("/")
        for source in sources:
            origin = (ROOT / source).resolve()
            for file in context:
                if file == origin or origin in file.parents:
                    relative = file.relative_to(origin) if origin.is_dir() else Path(file.name)
                    (target / relative).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(file, target / relative)

    venv: str | None = None
    install: list[str] | None = None
    wheel_dir: Path | None = None
    for arguments in stage.all("RUN"):
        for command in arguments.split("&&"):
            words = shlex.split(command)
            if words[:3] == ["python", "-m", "venv"]:
                venv = words[-1]
            elif _python(words[0]) and words[1:4] == ["-m", "pip", "wheel"]:
                words = [sys.executable] + [_in_rootfs(rootfs, word) for word in words[1:]]
                result = subprocess.run(words, cwd=workdir, capture_output=True, text=True, timeout=120)
                assert result.returncode == 0, f"{shlex.join(words)} failed:\n{result.stdout}\n{result.stderr}"
                wheel_dir = workdir / words[words.index("-w") + 1]  # an absolute -w path replaces workdir
            elif _python(words[0]) and words[1:4] == ["-m", "pip", "install"]:
                install = words
            else:
                pytest.fail(f"the builder runs `{command.strip()}`, which this test does not know how to prove")
    assert venv, "the builder creates no venv"
    assert install, "the builder installs nothing into its venv"
    assert wheel_dir, "the builder builds no wheel"
    wheels = sorted(wheel_dir.glob("*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {wheel_dir}, found {wheels}"
    return Built(rootfs, workdir, wheels[0], venv, install)


def test_hadolint_reports_nothing() -> None:
    hadolint = BIN / "hadolint"
    if not hadolint.exists():
        pytest.fail(f"{hadolint} is missing: install the dev extra (`pip install -c constraints.txt -e '.[dev]'`)")
    result = subprocess.run(
        [str(hadolint), "--no-color", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, json.loads(result.stdout or "null")) == (0, []), result.stdout + result.stderr


def test_wheel_carries_every_module_and_the_migrations(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as wheel:
        names = set(wheel.namelist())
        entry_points = next(name for name in names if name.endswith(".dist-info/entry_points.txt"))
        assert "asset-gateway = gateway.cli:main" in wheel.read(entry_points).decode()
    missing = [name for name in WHEEL_DATA if name not in names]
    assert not missing, f"{built.wheel.name} lacks what Alembic needs: {missing}"

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    sources = {
        path.relative_to(ROOT).as_posix()
        for package in packages["packages"]
        for path in (ROOT / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert not sorted(sources - names), f"{built.wheel.name} lacks {sorted(sources - names)}"


def test_builder_installs_the_wheel_with_every_dependency_pinned(built: Built) -> None:
    stages = read_stages()
    # The install runs in the venv the builder made, and that venv is what the runtime stage copies.
    assert Path(built.install[0]).parent == Path(built.venv) / "bin", built.install
    copies = [shlex.split(arguments) for arguments in stages[-1].all("COPY")]
    assert ["--from=builder", built.venv, built.venv] in copies, copies

    # The same install, resolved here against this (identically pinned) venv without installing anything.
    arguments = [match for word in built.install[1:] for match in _glob(_in_rootfs(built.rootfs, word))]
    words = [sys.executable, *arguments, "--dry-run", "--no-index"]
    result = subprocess.run(words, cwd=built.workdir, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{shlex.join(words)} failed:\n{result.stdout}\n{result.stderr}"

    # ... and `-c constraints.txt` pins every package that install pulls in, so the image is reproducible.
    constraints_word = built.install[built.install.index("-c") + 1]
    pins = {
        canonicalize_name(Requirement(line).name)
        for line in (built.workdir / constraints_word).read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    unpinned = sorted(canonicalize_name(name) for name in _runtime_closure(built.wheel) if name not in pins)
    assert not unpinned, f"constraints.txt does not pin {unpinned}"


def _glob(word: str) -> list[str]:
    if not any(char in word for char in "*?["):
        return [word]
    matches = sorted(str(path) for path in Path(word).parent.glob(Path(word).name))
    assert matches, f"{word} matches nothing"
    return matches


def _runtime_closure(wheel: Path) -> set[str]:
    """Every distribution the wheel needs, following the installed packages' own requirements."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        lines = archive.read(metadata).decode().splitlines()
    pending = [(Requirement(line.split(":", 1)[1].strip()), "") for line in lines if line.startswith("Requires-Dist:")]
    seen: set[str] = set()
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        key = f"{name}[{','.join(sorted(requirement.extras))}]"
        if key in seen:
            continue
        seen.update({key, name})
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue  # not installed here: still reported as unpinned if constraints.txt lacks it
        for extra_name in ["", *requirement.extras]:
            pending.extend((Requirement(line), extra_name) for line in requires)
    return {name for name in seen if "[" not in name}


# --- running the runtime stage ----------------------------------------------------------------------------------


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"{}")


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _listens_on_every_interface(port: int) -> bool:
    """Whether a socket listens on 0.0.0.0:port, as a container's server must (Linux's table; elsewhere, assumed)."""
    table = Path("/proc/net/tcp")
    if not table.exists():
        return True
    rows = [line.split() for line in table.read_text().splitlines()[1:]]
    return any(row[1] == f"00000000:{port:04X}" and row[3] == "0A" for row in rows)


def _on_port(words: list[str], container_port: str, port: int) -> list[str]:
    return [re.sub(rf"(?<!\d){container_port}(?!\d)", str(port), word) for word in words]


def _healthcheck(runtime: Stage, container_port: str, port: int) -> tuple[list[str], float]:
    options, marker, command = runtime.last("HEALTHCHECK").partition("CMD ")
    assert marker, "HEALTHCHECK has no CMD"
    words = _on_port(exec_form(command), container_port, port)
    timeout = re.search(r"--timeout=(\S+)", options)
    return words, seconds(timeout.group(1)) if timeout else 30.0


@pytest.mark.timeout(60)
def test_container_command_migrates_serves_and_passes_its_healthcheck(built: Built, tmp_path: Path) -> None:
    runtime = read_stages()[-1]
    container_port = runtime.last("EXPOSE").split("/")[0]
    port = free_port()
    cmd = _on_port(exec_form(runtime.last("CMD")), container_port, port)
    healthcheck, healthcheck_timeout = _healthcheck(runtime, container_port, port)

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = {name: value for name, value in os.environ.items() if not name.startswith("GATEWAY_")}
    env["GATEWAY_PORT"] = str(port)  # stands in for the default port, should the CMD not give one
    env.update({name: value for name, value in runtime.env().items() if name != "PATH"})
    env.update(GATEWAY_DATA_DIR=str(data_dir), PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    # The code runs from the wheel the builder made (ahead of this checkout's editable install), as in the image.
    site = tmp_path / "site"
    with zipfile.ZipFile(built.wheel) as wheel:
        wheel.extractall(site)
    env["PYTHONPATH"] = str(site)
    origin = subprocess.run(
        ["python", "-c", "import gateway.cli, schema; print(gateway.cli.__file__, schema.__file__)"],
        cwd=data_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert origin.returncode == 0, origin.stderr
    assert all(Path(file).is_relative_to(site) for file in origin.stdout.split()), origin.stdout
    log = tmp_path / "server.log"

    # Serving every interface without a token is refused: the operator creates one first (or passes --insecure).
    refused = subprocess.run(cmd, cwd=data_dir, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0, refused.stdout
    assert "without authentication" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr, refused.stderr
    created = subprocess.run(
        ["asset-gateway", "token", "create", "--name", "operator", "--scope", "admin", "--namespace", "*"],
        cwd=data_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr

    with log.open("wb") as output:
        server = subprocess.Popen(
            cmd, cwd=data_dir, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    stopped = False
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _accepts(port):
            assert server.poll() is None, f"{cmd} exited with {server.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"nothing on port {port} after {STARTUP_SECONDS}s:\n{log.read_text()}"
            time.sleep(0.1)

        assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        assert _listens_on_every_interface(port), "the server listens on loopback only: unreachable from outside"
        result = subprocess.run(healthcheck, env=env, capture_output=True, text=True, timeout=healthcheck_timeout)
        assert result.returncode == 0, f"HEALTHCHECK failed on a healthy server:\n{result.stderr}"
        status, body = _get(f"http://127.0.0.1:{port}/readyz")
        assert (status, body.get("status")) == (200, "ready"), body
        assert (data_dir / "gateway.db").exists(), "the database is not in GATEWAY_DATA_DIR"
        assert b"migrated sqlite+aiosqlite" in log.read_bytes(), log.read_text()

        # SIGTERM, as `docker stop` sends it to PID 1: the server itself must get it (hence `exec`) and stop
        # gracefully. Uvicorn re-raises the signal once it has shut down, so -SIGTERM is a clean exit too.
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=15) in (0, -signal.SIGTERM), log.read_text()
        assert "Application shutdown complete" in log.read_text(), log.read_text()
        assert not _accepts(port), "the server outlived the container's main process: is it exec'd?"
        result = subprocess.run(healthcheck, env=env, capture_output=True, text=True, timeout=healthcheck_timeout)
        assert result.returncode != 0, "HEALTHCHECK passes with no server"
        stopped = True
    finally:
        if not stopped:  # the command's session (its own process group): the server and anything it left behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


def test_runtime_runs_as_a_non_root_user_from_the_venv() -> None:
    runtime = read_stages()[-1]
    assert runtime.base == builder_stage(read_stages()).base == "python:3.11-slim"
    user = runtime.last("USER").split(":")[0]
    assert user not in ("root", "0"), f"the runtime stage runs as {user}"
    order = [instruction for instruction, _ in runtime.instructions]
    assert order.index("USER") < order.index("CMD"), "USER must come before CMD"

    env = runtime.env()
    data_dir = env.get("GATEWAY_DATA_DIR")
    assert data_dir, "GATEWAY_DATA_DIR is not set in the runtime stage"
    assert any("chown" in run and data_dir in run for run in runtime.all("RUN")), f"{data_dir} is not chowned"
    assert env.get("PATH", "").startswith(f"{builder_venv()}/bin:"), "the venv's bin is not first on PATH"


def builder_venv() -> str:
    for arguments in builder_stage(read_stages()).all("RUN"):
        for command in arguments.split("&&"):
            words = shlex.split(command)
            if words[:3] == ["python", "-m", "venv"]:
                return words[-1]
    pytest.fail("the builder creates no venv")
