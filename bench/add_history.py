#!/usr/bin/env python3
"""add_history.py - give a generated config repository a history: N more commits on `main`, each
rewriting the first line (a comment) of one Deployment, so no image reference changes and the plan
stays the same. Uses `git fast-import`, then checks the work tree out again.

Usage: add_history.py REPO COMMITS
"""
import os
import subprocess
import sys


def main():
    repo, count = sys.argv[1], int(sys.argv[2])
    files = sorted(
        os.path.join(root, name)[len(repo) + 1:]
        for root, _, names in os.walk(os.path.join(repo, "apps"))
        for name in names
        if name == "deployment.yaml"
    )
    contents = {}
    stream = []
    when = int(subprocess.check_output(["git", "-C", repo, "log", "-1", "--format=%ct"]).strip())
    for index in range(1, count + 1):
        path = files[index % len(files)]
        if path not in contents:
            with open(os.path.join(repo, path), "rb") as handle:
                contents[path] = handle.read()
        lines = contents[path].split(b"\n", 1)
        contents[path] = b"# %s - revision %d\n" % (path.encode(), index) + lines[1]
        message = b"touch %s (%d)\n" % (path.encode(), index)
        stream.append(b"commit refs/heads/main\n")
        stream.append(b"committer bench <bench@example.invalid> %d +0000\n" % (when + index))
        stream.append(b"data %d\n%s" % (len(message), message))
        if index == 1:
            stream.append(b"from refs/heads/main^0\n")
        stream.append(b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(contents[path]), contents[path]))
    subprocess.run(["git", "-C", repo, "fast-import", "--quiet"], input=b"".join(stream), check=True)
    subprocess.run(["git", "-C", repo, "reset", "--hard", "-q", "main"], check=True)


if __name__ == "__main__":
    main()
