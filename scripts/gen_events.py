#!/usr/bin/env python3
"""Seeded generator of event files shaped like the public "structured-streaming/events" sample.

Each file holds JSON lines {"time": <epoch seconds>, "action": "Open"|"Close"}; times rise across
files (and within a file) over about two days from 2016-07-26. The same arguments always give
byte-identical files.

    scripts/gen_events.py --out fixtures/events                     # 50 files x 2,000 lines
    scripts/gen_events.py --out /tmp/bench --files 50 --lines 200000  # benchmark input
"""
import argparse
import os
import random

START = 1469501107  # 2016-07-26T02:45:07Z, the sample's first event


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="directory to write file-NN.json into")
    p.add_argument("--files", type=int, default=50)
    p.add_argument("--lines", type=int, default=2000, help="lines per file")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--span-seconds", type=int, default=2 * 24 * 3600, help="time covered by all files")
    args = p.parse_args()

    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    total = args.files * args.lines
    step = args.span_seconds / max(total, 1)
    t = float(START)
    width = max(2, len(str(args.files - 1)))
    for i in range(args.files):
        lines = []
        for _ in range(args.lines):
            t += rng.expovariate(1.0 / step)
            action = "Open" if rng.random() < 0.5 else "Close"
            lines.append('{"time":%d,"action":"%s"}\n' % (int(t), action))
        tmp = os.path.join(args.out, ".file-%0*d.json.tmp" % (width, i))
        with open(tmp, "w") as f:
            f.writelines(lines)
        os.replace(tmp, os.path.join(args.out, "file-%0*d.json" % (width, i)))


if __name__ == "__main__":
    main()
