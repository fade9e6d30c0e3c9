"""Profile gw's hot path: drain N no-op jobs with `gw run --once` under py-spy.

    .venv/bin/pip install py-spy          # once; not a project dependency
    .venv/bin/python -m bench.profile [--jobs N] [--profile defaults|tuned] [--idle] [--top K]

Prints the functions with the most samples (self and inclusive) and leaves the raw
collapsed stacks (for flamegraph tools / speedscope) at the path it prints.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import databases, measures, procs, profiles, sides


def _py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def summarize(raw: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples"]
    for title, counter in (("self", own), ("inclusive", inclusive)):
        lines.append(f"\ntop {top} by {title} samples:")
        for frame, count in counter.most_common(top):
            lines.append(f"{100 * count / max(total, 1):6.1f}%  {frame}")
    return "\n".join(lines)


async def profile(args: argparse.Namespace, spy: str) -> int:
    dbs = databases.Databases(databases.admin_url())
    out = args.out or Path(tempfile.mkdtemp(prefix="gwbench-profile-")) / "gw.collapsed"
    try:
        with tempfile.TemporaryDirectory(prefix="gwbench-") as tmp:
            gw = sides.GwSide(Path(tmp))
            await asyncio.to_thread(gw.detect)
            if note := gw.profile_note(args.profile):
                print(note, file=sys.stderr)
                return 1
            async with dbs.fresh("gw", "profile") as url:
                payload = "json_build_object('i', i)"
                await measures.insert_jobs(url, "bench_noop", args.jobs, payload)
                command = gw.command(
                    url, profile=args.profile, concurrency=args.concurrency, once=True
                )
                argv = [spy, "record", "--format", "raw", "--rate", str(args.rate),
                        "--subprocesses", "-o", str(out)]
                if args.idle:
                    argv.append("--idle")
                result = await procs.run(
                    [*argv, "--", *command.argv], env=command.env, cwd=command.cwd,
                    timeout=max(120.0, args.jobs / 50),
                )
                left, failed = await measures.count_jobs(url)
            if not result.ok or left:
                print(f"profiling run failed: {left} left, {failed} failed; {result.tail()}",
                      file=sys.stderr)
                return 1
            print(f"{args.jobs} jobs in {result.seconds:.2f} s under py-spy "
                  f"({args.jobs / result.seconds:,.0f} jobs/s, slowed by sampling)")
            print(summarize(out, args.top))
            print(f"\nraw collapsed stacks: {out}")
            return 0
    finally:
        await dbs.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--profile", choices=profiles.PROFILES, default="defaults")
    parser.add_argument("--concurrency", type=int, default=profiles.DEFAULT_CONCURRENCY)
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--idle", action="store_true", help="count idle (waiting) samples too")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, help="where to keep the raw collapsed stacks")
    args = parser.parse_args()
    spy = _py_spy()
    if spy is None:
        print("py-spy is not installed: run `.venv/bin/pip install py-spy`", file=sys.stderr)
        return 2
    return asyncio.run(profile(args, spy))


if __name__ == "__main__":
    raise SystemExit(main())
