#!/usr/bin/env python3
"""Counts the bytes outside the image values that a rewrite changed: compares each file of a rewritten
tree with the same file of the reference rewrite (tagwatch's, which changes the tag bytes only) and
with the original. Prints files changed and bytes that differ from the reference rewrite.

Usage: rewrite_compare.py ORIGINAL REFERENCE CANDIDATE
       rewrite_compare.py --tag-only ORIGINAL REWRITTEN   (checks every changed line differs only in
                                                           a version and its pinned digest)
"""
import difflib
import os
import re
import sys

VERSION = re.compile(r"[0-9][0-9.]*(@sha256:[0-9a-f]{64})?")


def differing_bytes(a, b):
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    same = sum(block.size for block in matcher.get_matching_blocks())
    return (len(a) - same) + (len(b) - same)


def tag_only(original, rewritten):
    files = changes = outside = 0
    for root, _, names in os.walk(original):
        for name in names:
            relative = os.path.relpath(os.path.join(root, name), original)
            with open(os.path.join(original, relative), "rb") as handle:
                before = handle.read().decode()
            with open(os.path.join(rewritten, relative), "rb") as handle:
                after = handle.read().decode()
            if before == after:
                continue
            files += 1
            old_lines, new_lines = before.splitlines(True), after.splitlines(True)
            if len(old_lines) != len(new_lines):
                outside += 1
                print(f"{relative}: line count changed", file=sys.stderr)
                continue
            for old, new in zip(old_lines, new_lines):
                if old == new:
                    continue
                changes += 1
                # The only allowed change: a version (and a pinned digest) inside the line.
                if VERSION.sub("V", old) != VERSION.sub("V", new):
                    outside += 1
                    print(f"{relative}: {old!r} -> {new!r}", file=sys.stderr)
    print(f"files changed: {files}; changed lines: {changes}; changes outside the version: {outside}")


def main():
    if sys.argv[1] == "--tag-only":
        tag_only(sys.argv[2], sys.argv[3])
        return
    original, reference, candidate = sys.argv[1:4]
    files = unrelated = 0
    for root, _, names in os.walk(original):
        for name in names:
            relative = os.path.relpath(os.path.join(root, name), original)
            with open(os.path.join(original, relative), "rb") as handle:
                before = handle.read()
            with open(os.path.join(reference, relative), "rb") as handle:
                expected = handle.read()
            with open(os.path.join(candidate, relative), "rb") as handle:
                got = handle.read()
            if got != before:
                files += 1
            if got != expected:
                unrelated += differing_bytes(expected.decode(), got.decode())
    print(f"files changed: {files}; bytes differing from a tag-only rewrite: {unrelated}")


if __name__ == "__main__":
    main()
