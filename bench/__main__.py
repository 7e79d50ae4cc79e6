"""`python -m bench`, which `micdr bench` runs: the benchmark's own command line.

The benchmark is a dev tool beside the server (bench/run.py), so the server's CLI launches it
instead of importing it. Errors are one line on stderr and exit status 2, as for every `micdr`
command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.run import main as run
from bench.stack import StackError


def parser() -> argparse.ArgumentParser:
    b = argparse.ArgumentParser(
        prog="micdr bench", description="benchmark ingest, search and read (bench/README.md)"
    )
    b.add_argument("--quick", action="store_true", help="small data, about 3 minutes on 2 cores")
    b.add_argument("--stack", choices=("embedded", "full", "both"), default="embedded")
    b.add_argument("--out", default="bench/results", help="folder for the JSON, Markdown, PNG")
    b.add_argument("--profile", action="store_true", help="py-spy the API during each ingest phase")
    b.add_argument("--patients", type=int, help="generated patients (about 9 entries each)")
    b.add_argument("--workers", type=int, help="full stack: micdr worker processes (default 2)")
    b.add_argument("--seed", type=int, help="the generator's seed")
    return b


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        run(
            quick=args.quick,
            stack=args.stack,
            out=Path(args.out),
            profile=args.profile,
            patients=args.patients,
            workers=args.workers,
            seed=args.seed,
        )
    except StackError as exc:
        print(f"micdr: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
