"""Print the figures of the last reliability run (``make test-reliability``) as a table.

Usage: python bench/reliability_figures.py [PATH] [--json]
PATH defaults to $RELIABILITY_FIGURES or var/reliability-figures.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=None)
    parser.add_argument("--json", action="store_true", help="print the raw JSON")
    args = parser.parse_args(argv)
    path = Path(
        args.path or os.environ.get("RELIABILITY_FIGURES") or "var/reliability-figures.json"
    )
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        print(f"{path}: no figures yet; run make test-reliability", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(
        f"reliability figures ({path}, -m {doc.get('markexpr') or 'all'}, "
        f"{doc.get('elapsed_seconds')} s)"
    )
    for area, counters in doc["areas"].items():
        print(f"\n{area}")
        for name, value in counters.items():
            print(f"  {name:<48} {value:>10,}")
    zero = doc["must_be_zero"]
    print("\nmust be zero: " + ", ".join(f"{k}={v}" for k, v in zero.items()))
    return 0 if not any(zero.values()) else 2


if __name__ == "__main__":
    raise SystemExit(main())
