#!/usr/bin/env python3
"""Generate GitHub-Archive-like events as gzipped JSON lines, seeded: nested actor / repo / org
objects, a payload whose shape depends on the event type (commits arrays of structs for pushes,
an action and a number for issues and pull requests, a ref for creates), optional fields,
64-bit ids and ISO-8601 times with a Z, as GH Archive writes them.

    gen_github.py --out DIR [--files 50] [--lines 200000] [--seed 1] [--plain]

Writes DIR/events-NNN.json.gz (or .json with --plain). Prints the uncompressed byte count.
"""
import argparse
import datetime
import gzip
import json
import multiprocessing
import os
import random

TYPES = ["PushEvent"] * 5 + ["WatchEvent"] * 2 + ["CreateEvent", "IssuesEvent", "PullRequestEvent",
                                                   "IssueCommentEvent", "ForkEvent"]
# The schema all engines read the events with (Spark DDL).
SCHEMA_DDL = (
    "id STRING, type STRING, "
    "actor STRUCT<id: BIGINT, login: STRING, display_login: STRING, url: STRING, avatar_url: STRING>, "
    "repo STRUCT<id: BIGINT, name: STRING, url: STRING>, "
    "payload STRUCT<action: STRING, ref: STRING, ref_type: STRING, size: BIGINT, number: BIGINT, "
    "commits: ARRAY<STRUCT<sha: STRING, message: STRING, distinct: BOOLEAN, "
    "author: STRUCT<name: STRING, email: STRING>>>>, "
    "public BOOLEAN, created_at TIMESTAMP, org STRUCT<id: BIGINT, login: STRING>"
)
START = datetime.datetime(2024, 3, 1, tzinfo=datetime.timezone.utc)


def payload(rng, kind, n):
    if kind == "PushEvent":
        k = rng.choice((1, 1, 1, 2, 3, 5))
        commits = [{
            "sha": "%040x" % rng.getrandbits(160),
            "author": {"email": f"dev{rng.randrange(5000)}@example.com", "name": f"Dev {rng.randrange(5000)}"},
            "message": rng.choice(("Fix typo", "Update README.md", "Merge branch 'main'", "Bump deps\n\nsigned-off")),
            "distinct": rng.random() < 0.9,
            "url": f"https://api.github.com/repos/o/r/commits/{n}",
        } for _ in range(k)]
        return {"push_id": 10_000_000_000 + n, "size": k, "distinct_size": k, "ref": "refs/heads/main",
                "head": "%040x" % rng.getrandbits(160), "before": "%040x" % rng.getrandbits(160),
                "commits": commits}
    if kind in ("IssuesEvent", "PullRequestEvent", "IssueCommentEvent"):
        return {"action": rng.choice(("opened", "closed", "created")), "number": rng.randrange(1, 50_000)}
    if kind == "CreateEvent":
        return {"ref": rng.choice(("main", "v1.0", None)), "ref_type": rng.choice(("branch", "tag")),
                "master_branch": "main", "pusher_type": "user"}
    if kind == "WatchEvent":
        return {"action": "started"}
    return {}


def event(rng, n, seconds):
    kind = rng.choice(TYPES)
    actor_id = rng.randrange(1, 50_000_000)
    login = f"user{actor_id % 100_000}"
    e = {
        "id": str(30_000_000_000 + n),
        "type": kind,
        "actor": {"id": actor_id, "login": login, "display_login": login, "gravatar_id": "",
                  "url": f"https://api.github.com/users/{login}",
                  "avatar_url": f"https://avatars.githubusercontent.com/u/{actor_id}?"},
        "repo": {"id": rng.randrange(1, 700_000_000), "name": f"{login}/repo{rng.randrange(100)}",
                 "url": f"https://api.github.com/repos/{login}/repo"},
        "payload": payload(rng, kind, n),
        "public": True,
        "created_at": (START + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if rng.random() < 0.2:
        e["org"] = {"id": rng.randrange(1, 100_000_000), "login": f"org{rng.randrange(1000)}",
                    "url": "https://api.github.com/orgs/x"}
    return e


def write_file(job):
    out, f, lines, total, span, seed, plain = job
    rng = random.Random(seed * 1_000_003 + f)
    rows = []
    for i in range(lines):
        n = f * lines + i
        rows.append(json.dumps(event(rng, n, n * span // total), separators=(",", ":")))
    data = ("\n".join(rows) + "\n").encode()
    name = f"events-{f:03}.json" + ("" if plain else ".gz")
    tmp = os.path.join(out, "." + name)
    if plain:
        with open(tmp, "wb") as fh:
            fh.write(data)
    else:
        with gzip.open(tmp, "wb", compresslevel=1) as fh:
            fh.write(data)
    os.replace(tmp, os.path.join(out, name))
    return len(data)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--files", type=int, default=50)
    p.add_argument("--lines", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--span-seconds", type=int, default=2 * 24 * 3600)
    p.add_argument("--plain", action="store_true", help="write .json instead of .json.gz")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    total = args.files * args.lines
    jobs = [(args.out, f, args.lines, total, args.span_seconds, args.seed, args.plain) for f in range(args.files)]
    with multiprocessing.Pool(os.cpu_count() or 2) as pool:
        raw = sum(pool.map(write_file, jobs))
    print(raw)


if __name__ == "__main__":
    main()
