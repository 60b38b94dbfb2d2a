#!/usr/bin/env python3
"""The same edit as `tagwatch set IMAGE=TAG` done the way format-preserving Python tools do it: a
ruamel.yaml round trip (load, change the values, dump) of every YAML file under a directory.

Handles the benchmark's kinds: container `image:` strings, Helm maps (`registry`/`repository` + `tag`),
kustomize `images:` entries (`name`/`newName` + `newTag`), compose `services.*.image`.

Usage: rewrite_ruamel.py DIRECTORY IMAGE TAG   (IMAGE as written, e.g. ghcr.io/acme/shared)
"""
import os
import sys

from ruamel.yaml import YAML


def bump(node, image, tag, changed):
    if isinstance(node, dict):
        repository = node.get("repository")
        if isinstance(repository, str) and "tag" in node:
            registry = node.get("registry")
            full = f"{registry}/{repository}" if registry else repository
            if full == image:
                # As tagwatch does: a digest pinned to the old tag goes with it.
                node["tag"] = tag
                changed.append(1)
        name = node.get("newName") or node.get("name")
        if "newTag" in node and name == image:
            node["newTag"] = tag
            changed.append(1)
        for key, value in node.items():
            if key == "image" and isinstance(value, str) and value.rsplit(":", 1)[0] == image:
                node[key] = f"{image}:{tag}"
                changed.append(1)
            else:
                bump(value, image, tag, changed)
    elif isinstance(node, list):
        for item in node:
            bump(item, image, tag, changed)


def main():
    directory, image, tag = sys.argv[1:4]
    yaml = YAML()
    yaml.preserve_quotes = True
    references = files = 0
    for root, _, names in os.walk(directory):
        for name in names:
            if not name.endswith((".yaml", ".yml")):
                continue
            path = os.path.join(root, name)
            with open(path, newline="") as handle:
                documents = list(yaml.load_all(handle))
            changed = []
            for document in documents:
                bump(document, image, tag, changed)
            if changed:
                with open(path, "w", newline="") as handle:
                    yaml.dump_all(documents, handle)
                references += len(changed)
                files += 1
    print(f"ruamel: changed {references} references in {files} files")


if __name__ == "__main__":
    main()
