"""How to run each side: gw (`gw run`) and the reference (graphile-worker 0.18.0's CLI)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench import profiles
from tests.helpers import reference

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
HELP_TIMEOUT = 60.0
_FLAG = re.compile(r"--[a-z][a-z0-9-]*")
# settings the benchmark must not inherit from the caller's environment
_LEAKY_ENV = ("DATABASE_URL", "GRAPHILE_WORKER_SCHEMA", "PGDATABASE")


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str]
    cwd: Path


def _clean_env(base: dict[str, str]) -> dict[str, str]:
    return {
        key: value for key, value in base.items()
        if key not in _LEAKY_ENV and not key.startswith("GW_")
    }


def gw_executable() -> list[str]:
    script = Path(sys.executable).parent / "gw"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "graphile_worker_cli"]


@dataclass
class GwSide:
    """`gw run` as a subprocess; flags it lacks are detected from `gw run --help`."""

    workdir: Path
    name: str = "gw"
    flags: set[str] = field(default_factory=set)
    unavailable: str | None = None

    def env(self) -> dict[str, str]:
        """The caller's environment without gw settings, with bytecode cached in the run's
        scratch folder: an installed package has its .pyc files, so gw must not recompile
        its modules on every start even where PYTHONDONTWRITEBYTECODE is set."""
        env = _clean_env(dict(os.environ))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(self.workdir / "pycache")
        return env

    def _compile(self) -> None:
        import graphile_worker_cli

        package = Path(graphile_worker_cli.__file__).resolve().parent
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(package), str(TASKS_DIR / "gw")],
            env=self.env(), capture_output=True, timeout=HELP_TIMEOUT, check=False,
        )

    def detect(self) -> None:
        env = self.env() | {"COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"}
        try:
            self._compile()
            result = subprocess.run(
                [*gw_executable(), "run", "--help"], capture_output=True, text=True,
                timeout=HELP_TIMEOUT, env=env, cwd=self.workdir, check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            self.unavailable = f"`gw run --help` failed: {error}"
            return
        self.flags = set(_FLAG.findall(result.stdout))
        if result.returncode != 0 or "--once" not in self.flags:
            self.unavailable = "`gw run` cannot run jobs yet (no --once in `gw run --help`)"

    def missing(self, flags: list[str]) -> list[str]:
        return [flag for flag in flags if flag not in self.flags]

    def profile_args(self, profile: str) -> tuple[list[str], list[str]]:
        """The flags of ``profile`` this gw has, and the names of those it lacks."""
        args: list[str] = []
        missing: list[str] = []
        for flag, value in profiles.GW_PROFILES[profile]:
            if flag not in self.flags:
                missing.append(flag)
                continue
            args.append(flag)
            if value is not None:
                args.append(value)
        return args, missing

    def profile_note(self, profile: str) -> str:
        """Why ``profile`` cannot run ("" when it can); partial profiles say what they lack."""
        if self.unavailable:
            return self.unavailable
        args, missing = self.profile_args(profile)
        if missing and not args:
            return "n/a: `gw run` has none of " + ", ".join(missing)
        return ""

    def partial_note(self, profile: str) -> str:
        _, missing = self.profile_args(profile)
        return "without " + ", ".join(missing) if missing else ""

    def command(
        self, url: str, *, profile: str, concurrency: int, once: bool,
        extra: tuple[str, ...] = (),
    ) -> Command:
        args, _ = self.profile_args(profile)
        argv = [
            *gw_executable(), "run", "-c", url, "--tasks", str(TASKS_DIR / "gw"),
            "-j", str(concurrency), "--no-migrate", *args, *extra,
        ]
        if once:
            argv.append("--once")
        return Command(argv, self.env(), self.workdir)


@dataclass
class ReferenceSide:
    """The pinned reference CLI, run from a folder holding its tasks/ (and a config file)."""

    workdir: Path
    name: str = "reference"
    unavailable: str | None = None

    def detect(self) -> None:
        try:
            reference.ensure_installed()
        except (RuntimeError, OSError, subprocess.CalledProcessError) as error:
            self.unavailable = f"the reference is not installed: {error}"
            return
        for profile in profiles.PROFILES:
            folder = self._folder(profile)
            shutil.copytree(TASKS_DIR / "reference", folder / "tasks", dirs_exist_ok=True)
            preset = profiles.REFERENCE_PROFILES[profile]
            if preset:
                text = "module.exports = " + json.dumps(preset, indent=2) + ";\n"
                (folder / "graphile.config.js").write_text(text)

    def _folder(self, profile: str) -> Path:
        return self.workdir / f"reference-{profile}"

    def profile_note(self, profile: str) -> str:
        return self.unavailable or ""

    def partial_note(self, profile: str) -> str:
        return ""

    def command(
        self, url: str, *, profile: str, concurrency: int, once: bool,
        extra: tuple[str, ...] = (),
    ) -> Command:
        folder = self._folder(profile)
        args = ["-c", url, "-j", str(concurrency), *extra]
        if (folder / "graphile.config.js").exists():
            args += ["--config", str(folder / "graphile.config.js")]
        if once:
            args.append("--once")
        env = _clean_env(reference.reference_env(profiles.SCHEMA))
        env["GRAPHILE_WORKER_SCHEMA"] = profiles.SCHEMA
        return Command(reference.reference_command(*args), env, folder)


Side = GwSide | ReferenceSide
