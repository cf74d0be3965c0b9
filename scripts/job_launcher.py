"""The source project's launcher flags, mapped onto `benchmark launch`.

    uv run python scripts/job_launcher.py --batch-size 10 --dry-run
    uv run python scripts/job_launcher.py --batch-size 20 --budget-limit 50.0
    uv run python scripts/job_launcher.py --batch-size 5 -- --gpus L4,A10G --clouds aws

--batch-size N   how many jobs this run submits (the source's meaning): `--max-jobs N`. Each job is one planned
                 shard (about 45 minutes of work, its models loaded once), not one pair; the evaluation batch size
                 stays `benchmark launch --batch-size`, reachable after `--`.
--budget-limit X `--budget X`: nothing is launched past X dollars.
--dry-run        `--dry-run`: print the plan and exit.
--max-jobs N     the same as --batch-size.
Everything after `--` goes to `benchmark launch` unchanged.
"""

from __future__ import annotations

import argparse
import sys


def translate(argv: list[str]) -> list[str]:
    cut = argv.index("--") if "--" in argv else len(argv)
    own, rest = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(prog="job_launcher.py", description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", "--max-jobs", dest="max_jobs", type=int, default=10, help="jobs to submit (default 10)")
    parser.add_argument("--budget-limit", type=float, default=None, help="dollars; nothing launched past it")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, launch nothing")
    args = parser.parse_args(own)
    if args.max_jobs < 1:
        parser.error("--batch-size must be at least 1")
    out = ["launch", "--max-jobs", str(args.max_jobs)]
    if args.budget_limit is not None:
        out += ["--budget", str(args.budget_limit)]
    if args.dry_run:
        out.append("--dry-run")
    return out + rest


def main(argv: list[str] | None = None) -> None:
    from openclip_benchmark.cli import app

    app(args=translate(sys.argv[1:] if argv is None else argv), prog_name="benchmark")


if __name__ == "__main__":
    main()
