"""Tag experiments: `+NAME` adds a tag, `-NAME` removes one. Writes the tags into the
experiment record (`"tags": [...]` in EXPDIR/.mrl). Without changes, prints the tags.

  mrl tag 3 +baseline +paper     tag experiment 3
  mrl tag 3 -paper               untag it
  mrl tag +seed-sweep            the experiment you are in (else the newest)
  mrl ls --tag baseline          the experiments tagged baseline; mrl ls shows every tag
  mrl table --tag baseline       their results in one table
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys

from metarunlog import ownership
from metarunlog.errors import MrlError
from metarunlog.experiment import Experiment
from metarunlog.fmt import printable
from metarunlog.project import Project

HELP = "add (+NAME) or remove (-NAME) tags of an experiment; mrl ls --tag, mrl table --tag select by them"
RESOLVES_EXP = False  # EXP is optional before +NAME / -NAME
TAG_WAIT_S = 60.0  # a makebatch of 10,000 sub-experiments holds the lock for seconds
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/@=-]*$")
EXP_LIKE = re.compile(r"[0-9][0-9,-]*\Z", re.ASCII)  # a bare word that is an experiment selection (2, 2-3, 2,3)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("expId", nargs="?", metavar="EXP", help="experiment (default: the one you are in, else the newest)")
    p.add_argument("changes", nargs=argparse.REMAINDER, metavar="+NAME|-NAME", help="tags to add (+) or remove (-)")


def fix_argv(argv: list[str]) -> list[str]:
    """`mrl tag -draft` (no EXP): a leading -NAME is a change, not an unknown option; `--help`
    before any `--` is the help (`-h` after EXP stays the change "remove tag h")."""
    i = argv.index("tag") + 1 if "tag" in argv else len(argv)
    words = argv[i : argv.index("--", i) if "--" in argv[i:] else len(argv)]
    if "--help" in words:  # `mrl tag 3 --help`: no tag starts with `-`, so it is the help
        return [*argv[:i], "--help"]
    if i < len(argv) and argv[i].startswith("-") and argv[i] not in ("-h", "--help", "--"):
        return [*argv[:i], "--", *argv[i:]]
    return argv


def cli(args: argparse.Namespace, project: Project) -> int:
    changes = list(args.changes or [])
    ref = args.expId
    if ref is not None and ref[:1] in "+-":
        ref, changes = None, [ref, *changes]
    exp = project.load_exp(ref)
    tags, missing = tag(exp, changes)
    for name in missing:
        print(f"mrl: warning: {exp.name} has no tag {name!r}", file=sys.stderr)
    print(f"{exp.name}: {' '.join(map(printable, tags)) if tags else '(no tags)'}")
    return 0


def parse_changes(changes: list[str]) -> list[tuple[str, str]]:
    """`+a -b c` -> [("+", "a"), ("-", "b"), ("+", "c")]; MrlError for a name that is not a tag."""
    out = []
    for c in changes:
        if EXP_LIKE.match(c):  # `mrl tag 1 2 +x` meant both; a bare 2 was added to 1 as a tag
            raise MrlError(
                f"{c!r} is not a tag change: mrl tag takes one experiment, then +NAME or -NAME; "
                f"tag each experiment in its own call (a tag of digits: +{c})"
            )
        sign, name = (c[0], c[1:]) if c.startswith(("+", "-")) else ("+", c)  # "" in "+-" is True
        if not TAG.match(name):
            raise MrlError(
                f"bad tag {c!r}: write +NAME or -NAME, NAME of ASCII letters (a-z, A-Z), digits and _ . : / @ = - "
                "(not starting with - or .)"
            )
        out.append((sign, name))
    return out


def tag(exp: Experiment, changes: list[str]) -> tuple[list[str], list[str]]:
    """Apply `changes` in order to the experiment's tags (kept in the order added), writing
    the record when they change: (the tags, the names asked removed that it did not have)."""
    parsed = parse_changes(changes)
    if not parsed:
        return list(exp.record.tags), []
    # Read and written under the batch lock, as makebatch and a runner's claim write the
    # record: an unlocked read-modify-write lost their changes or theirs lost the tags.
    busy = f"another mrl command is changing {exp.dir} (a makebatch?): wait for it, then tag again"
    with ownership.batch_lock(exp, wait=TAG_WAIT_S, busy=busy):
        exp.forget_record()
        return _apply(exp, parsed)


def _apply(exp: Experiment, parsed: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    record = exp.record
    tags, missing = list(record.tags), []
    for sign, name in parsed:
        if sign == "+" and name not in tags:
            tags.append(name)
        elif sign == "-" and name in tags:
            tags.remove(name)
        elif sign == "-":
            missing.append(name)
    if tags != record.tags:
        exp.write_record(dataclasses.replace(record, tags=tags))
    return tags, missing
