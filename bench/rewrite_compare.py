#!/usr/bin/env python3
"""Counts the bytes outside the image values that a rewrite changed: compares each file of a rewritten
tree with the same file of the reference rewrite (tagwatch's, which changes the tag bytes only) and
with the original. Prints files changed and bytes that differ from the reference rewrite.

Usage: rewrite_compare.py ORIGINAL REFERENCE CANDIDATE
       rewrite_compare.py --tag-only ORIGINAL REWRITTEN   (checks every change lies inside a version
                                                           string: digits and dots only)
"""
import difflib
import os
import sys


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
            matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
            for tag, i1, i2, j1, j2 in matcher.get_opcodes():
                if tag == "equal":
                    continue
                changes += 1
                if not set(before[i1:i2] + after[j1:j2]) <= set("0123456789."):
                    outside += 1
                    print(f"{relative}: {before[i1:i2]!r} -> {after[j1:j2]!r}", file=sys.stderr)
    print(f"files changed: {files}; changed stretches: {changes}; outside version strings: {outside}")


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
