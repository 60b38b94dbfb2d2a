#!/usr/bin/env python3
"""The soak's driver (bench/soak.sh; figures in docs/reliability/load.md); standard library only.

  soak_driver.py seed REGISTRY_URL REPOSITORY MANIFEST_OUT
      Pushes one tiny OCI image (an empty gzip'd layer and a config) to REPOSITORY, tagged 1.0.0, over
      the registry's HTTP API, and writes its manifest to MANIFEST_OUT (every later push re-tags it).

  soak_driver.py run SETTINGS.json
      The scenario, for `duration` seconds, against a running daemon (`pid`):
      - a push every `push_every` seconds: a new tag 1.0.N of a random image (a manifest PUT, as the
        last step of `docker push`; the registry's notification reaches the daemon), one push in ten a
        burst of three tags of the same image (the newer ones supersede the first);
      - a human commit every `human_every` seconds from the human's own clone, retried on a rejected
        push: a new file under notes/ (unrelated to tagwatch), and every `revert_every`-th one instead
        sets a field tagwatch bumped back to the version before (a revert; that image gets no more
        pushes, so the revert must hold);
      - RSS (anonymous and file-backed), open file descriptors and threads of the daemon, and the pack
        files in its git cache (`cache`), every `sample_every` seconds.
      Then it waits until the daemon has caught up (every image deploys its newest pushed tag, at most
      `settle` seconds) and checks: every push is accounted for (its tag was committed, or a newer tag
      of the same image was), tagwatch never committed a tag that was not pushed nor went backwards, no
      human commit is lost (each is an ancestor of the branch and its change is still there), every
      revert held (the field still holds the reverted version and no tagwatch commit touched it after).
      Prints the figures; exits 1 when a check fails.
"""

import gzip
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
EMPTY_LAYER_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
BUMP = re.compile(r"^Tagwatch-Bump: (\S+) (\S+) (\S+) -> (\S+)$", re.M)


def http(method, url, body=None, headers=None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.status, dict(answer.headers), answer.read()


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(base, repository, data):
    _, headers, _ = http("POST", f"{base}/v2/{repository}/blobs/uploads/")
    location = headers["Location"]
    if location.startswith("/"):
        location = base + location
    separator = "&" if "?" in location else "?"
    status, _, _ = http("PUT", f"{location}{separator}digest={digest(data)}", data,
                        {"Content-Type": "application/octet-stream"})
    assert status == 201, status
    return {"digest": digest(data), "size": len(data)}


def seed(base, repository, out):
    layer = gzip.compress(bytes(1024), mtime=0)
    config = json.dumps({
        "created": "2024-01-01T00:00:00Z", "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [EMPTY_LAYER_DIFF_ID]},
    }).encode()
    layer_descriptor = push_blob(base, repository, layer)
    config_descriptor = push_blob(base, repository, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_descriptor},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer_descriptor}],
    }).encode()
    put_manifest(base, repository, "1.0.0", manifest)
    with open(out, "wb") as f:
        f.write(manifest)


def put_manifest(base, repository, tag, manifest):
    status, _, _ = http("PUT", f"{base}/v2/{repository}/manifests/{tag}", manifest,
                        {"Content-Type": OCI_MANIFEST})
    assert status == 201, status


# --- the scenario ------------------------------------------------------------------------------------


def git(directory, *args, check=True):
    result = subprocess.run(
        ["git", "-c", "user.name=Human", "-c", "user.email=human@example.com", "-c", "commit.gpgsign=false",
         *args],
        cwd=directory, capture_output=True, text=True,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {result.stderr}")
    return result


def proc_sample(pid):
    """RSS (and its anonymous and file-backed parts) in MB, open fds, threads."""
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    mb = {key: int(status[key].split()[0]) / 1024 for key in ("VmRSS", "RssAnon", "RssFile")}
    threads = int(status["Threads"])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return mb["VmRSS"], mb["RssAnon"], mb["RssFile"], fds, threads


class Scenario:
    def __init__(self, settings):
        self.s = settings
        self.random = random.Random(settings.get("seed", 1))
        self.base = f"http://{settings['registry']}"
        with open(settings["manifest"], "rb") as f:
            self.manifest = f.read()
        self.images = [f"{settings['prefix']}-{i:04d}" for i in range(1, settings["images"] + 1)]
        # image -> its repository (config repo) and file, as soak.sh laid them out
        self.where = {}
        for i, image in enumerate(self.images):
            repo = f"cfg-{i % settings['repos'] + 1}"
            self.where[image] = (repo, f"apps/{image.rsplit('/', 1)[1]}.yaml")
        self.newest = {image: 0 for image in self.images}  # the N of the newest pushed tag 1.0.N
        self.pushes = []  # (time, image, n)
        self.pool = list(self.images)  # images that still get pushes (a reverted one leaves it)
        self.humans = []  # (repo, sha, kind, file, content)
        self.reverts = []  # (repo, sha, file, image, version)
        self.samples = []  # (elapsed, rss_mb, anon_mb, file_mb, fds, threads)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.errors = []
        self.clones = {}

    # --- actors ---

    def pusher(self):
        every = self.s["push_every"]
        next_at = time.time()
        while not self.stop.is_set():
            with self.lock:
                image = self.random.choice(self.pool)
            burst = 3 if self.random.random() < 0.1 else 1
            for _ in range(burst):
                with self.lock:
                    if image not in self.pool:
                        break
                    n = self.newest[image] + 1
                try:
                    put_manifest(self.base, image, f"1.0.{n}", self.manifest)
                except (urllib.error.URLError, AssertionError) as error:
                    self.errors.append(f"push {image}:1.0.{n}: {error}")
                    continue
                with self.lock:
                    self.newest[image] = n
                    self.pushes.append((time.time(), image, n))
            next_at += every
            self.stop.wait(max(0.0, next_at - time.time()))

    def clone(self, repo):
        if repo not in self.clones:
            path = os.path.join(self.s["work"], "human", repo)
            if not os.path.exists(path):
                subprocess.run(["git", "clone", "-q", os.path.join(self.s["git_root"], f"{repo}.git"), path],
                               check=True, capture_output=True)
            self.clones[repo] = path
        return self.clones[repo]

    def commit_and_push(self, repo, change, message):
        """Fetch, apply `change(clone)` (False: nothing to do), commit and push; retried when someone
        pushed first. Returns the pushed commit id, or None."""
        path = self.clone(repo)
        for _ in range(20):
            git(path, "fetch", "-q", "origin")
            git(path, "reset", "-q", "--hard", "origin/main")
            result = change(path)
            if result is False:
                return None
            git(path, "add", "-A")
            git(path, "commit", "-q", "-m", message)
            if git(path, "push", "-q", "origin", "HEAD:main", check=False).returncode == 0:
                return git(path, "rev-parse", "HEAD").stdout.strip()
            time.sleep(0.2 + self.random.random())
        self.errors.append(f"a human commit to {repo} was rejected 20 times")
        return None

    def revert_candidate(self):
        """An image of the pool whose field holds a version tagwatch wrote, pushed a while ago, with the
        version before it: (image, repo, file, version tagwatch wrote, version before)."""
        with self.lock:
            candidates = [image for image in self.pool if self.newest[image] >= 1]
            recent = {image for t, image, _ in self.pushes if t > time.time() - 30}
        self.random.shuffle(candidates)
        for image in candidates:
            if image in recent:
                continue
            repo, file = self.where[image]
            log = git(self.clone(repo), "log", "-1", "--format=%B", "origin/main", "--", file).stdout
            for _, name, before, after in BUMP.findall(log):
                if name.endswith("/" + image):
                    return image, repo, file, after.split("@")[0], before.split("@")[0]
        return None

    def human(self):
        every, revert_every = self.s["human_every"], self.s["revert_every"]
        count = 0
        while not self.stop.wait(every):
            count += 1
            if revert_every and count % revert_every == 0:
                for repo in {repo for repo, _ in self.where.values()}:
                    git(self.clone(repo), "fetch", "-q", "origin")
                candidate = self.revert_candidate()
                if candidate:
                    image, repo, file, wrote, before = candidate
                    with self.lock:
                        self.pool.remove(image)  # from now on no push for it: the revert must hold

                    def revert(path):
                        text = open(os.path.join(path, file)).read()
                        if f':{wrote}"' not in text:
                            return False  # tagwatch moved it meanwhile: try another time
                        with open(os.path.join(path, file), "w") as f:
                            f.write(text.replace(f':{wrote}"', f':{before}"'))

                    sha = self.commit_and_push(repo, revert, f"revert {image} to {before}")
                    if sha:
                        self.reverts.append((repo, sha, file, image, before))
                        self.humans.append((repo, sha, "revert", file, None))
                    else:
                        with self.lock:
                            self.pool.append(image)
                    continue
            repo = f"cfg-{count % self.s['repos'] + 1}"
            file = f"notes/human-{count:05d}.md"
            content = f"note {count} written at {time.time():.3f}\n"

            def note(path):
                os.makedirs(os.path.join(path, "notes"), exist_ok=True)
                with open(os.path.join(path, file), "w") as f:
                    f.write(content)

            sha = self.commit_and_push(repo, note, f"human note {count}")
            if sha:
                self.humans.append((repo, sha, "note", file, content))

    def sampler(self):
        start = time.time()
        with open(os.path.join(self.s["work"], "samples.csv"), "w") as csv:
            csv.write("elapsed_s,rss_mb,rss_anon_mb,rss_file_mb,fds,threads,pack_files\n")
            while True:
                rss, anon, file_backed, fds, threads = proc_sample(self.s["pid"])
                row = (time.time() - start, rss, anon, file_backed, fds, threads)
                self.samples.append(row)
                packs = sum(name.endswith(".pack") for _, _, names in os.walk(self.s["cache"]) for name in names)
                csv.write(f"{row[0]:.0f},{rss:.1f},{anon:.1f},{file_backed:.1f},{fds},{threads},{packs}\n")
                csv.flush()
                if self.stop.wait(self.s["sample_every"]):
                    break

    # --- the end ---

    def deployed(self, image):
        repo, file = self.where[image]
        bare = os.path.join(self.s["git_root"], f"{repo}.git")
        text = subprocess.run(["git", "--git-dir", bare, "show", f"main:{file}"],
                              capture_output=True, text=True).stdout
        match = re.search(r":1\.0\.(\d+)\"", text)
        return int(match.group(1)) if match else None

    def settle(self):
        deadline = time.time() + self.s["settle"]
        while True:
            behind = [image for image in self.pool if self.deployed(image) != self.newest[image]]
            if not behind or time.time() > deadline:
                return behind
            time.sleep(2)

    def check(self):
        failures = list(self.errors)
        committed = {image: [] for image in self.images}  # tagwatch's writes, oldest first
        touched_after = {}
        for repo in sorted({repo for repo, _ in self.where.values()}):
            bare = os.path.join(self.s["git_root"], f"{repo}.git")
            log = subprocess.run(
                ["git", "--git-dir", bare, "log", "--reverse", "--format=%H%x00%an%x00%B%x1e", "main"],
                capture_output=True, text=True, check=True).stdout
            for record in log.split("\x1e"):
                if "\x00" not in record:
                    continue
                sha, author, body = record.strip("\n").split("\x00", 2)
                for file, name, before, after in BUMP.findall(body):
                    image = name.split("/", 1)[1]
                    if image not in committed:
                        failures.append(f"{sha}: a bump of an unknown image {name}")
                        continue
                    committed[image].append(int(after.split("@")[0].rsplit(".", 1)[1]))
                    touched_after.setdefault((repo, file), []).append(sha)
        direct = superseded = 0
        for _, image, n in self.pushes:
            writes = committed[image]
            if n in writes:
                direct += 1
            elif any(m > n for m in writes):
                superseded += 1
            else:
                failures.append(f"push {image}:1.0.{n} never became a commit, nor a newer tag of it")
        for image, writes in committed.items():
            if any(b <= a for a, b in zip(writes, writes[1:])):
                failures.append(f"{image}: tagwatch's writes are not increasing: {writes}")
            if writes and writes[-1] > self.newest[image]:
                failures.append(f"{image}: tagwatch wrote 1.0.{writes[-1]}, never pushed")
        lost = 0
        for repo, sha, kind, file, content in self.humans:
            bare = os.path.join(self.s["git_root"], f"{repo}.git")
            ancestor = subprocess.run(["git", "--git-dir", bare, "merge-base", "--is-ancestor", sha, "main"])
            if ancestor.returncode != 0:
                lost += 1
                failures.append(f"human commit {sha} ({kind} {file}) is not on main")
            if kind == "note":
                now = subprocess.run(["git", "--git-dir", bare, "show", f"main:{file}"],
                                     capture_output=True, text=True).stdout
                if now != content:
                    lost += 1
                    failures.append(f"human note {file} in {repo} changed or vanished")
        held = 0
        for repo, sha, file, image, version in self.reverts:
            bare = os.path.join(self.s["git_root"], f"{repo}.git")
            after = subprocess.run(["git", "--git-dir", bare, "log", "--format=%H", f"{sha}..main", "--", file],
                                   capture_output=True, text=True, check=True).stdout.split()
            now = self.deployed(image)
            if after or f"1.0.{now}" != version:
                failures.append(f"revert of {image} to {version} in {repo} did not hold: now 1.0.{now}, "
                                f"commits since: {after}")
            else:
                held += 1
        return failures, direct, superseded, lost, held

    def run(self):
        actors = [threading.Thread(target=t, daemon=True) for t in (self.pusher, self.human)]
        sampler = threading.Thread(target=self.sampler, daemon=True)
        sampler.start()
        for actor in actors:
            actor.start()
        started = time.time()
        while time.time() - started < self.s["duration"]:
            time.sleep(1)
            try:
                os.kill(self.s["pid"], 0)
            except OSError:
                self.errors.append("the daemon died")
                break
        self.stop.set()
        for actor in actors:
            actor.join()
        behind = self.settle()
        sampler.join()
        failures, direct, superseded, lost, held = self.check()
        for image in behind:
            failures.append(f"{image}: still deploys 1.0.{self.deployed(image)}, newest pushed 1.0.{self.newest[image]}")
        report(self, direct, superseded, lost, held)
        for failure in failures[:50]:
            print("FAIL:", failure)
        if failures:
            print(f"{len(failures)} failures")
            sys.exit(1)
        print("all checks passed")


def report(scenario, direct, superseded, lost, held):
    samples = scenario.samples
    warm = [row for row in samples if row[0] >= scenario.s["warmup"]] or samples
    notes = sum(1 for h in scenario.humans if h[2] == "note")
    print(f"pushes: {len(scenario.pushes)} ({direct} committed as pushed, {superseded} superseded by a newer tag "
          f"of the same image, {len(scenario.pushes) - direct - superseded} unaccounted)")
    print(f"human commits: {len(scenario.humans)} ({notes} notes, {len(scenario.reverts)} reverts), lost: {lost}; "
          f"reverts held: {held}/{len(scenario.reverts)}")
    print(f"samples: {len(samples)} every {scenario.s['sample_every']} s; after the {scenario.s['warmup']} s warm-up:")
    for index, name in ((1, "RSS MB"), (2, "anon MB"), (3, "file MB"), (4, "open fds"), (5, "threads")):
        values = [row[index] for row in warm]
        print(f"  {name:9} first {values[0]:8.1f}  last {values[-1]:8.1f}  min {min(values):8.1f}  "
              f"max {max(values):8.1f}   (whole run: first {samples[0][index]:.1f}, max "
              f"{max(row[index] for row in samples):.1f})")


def main():
    args = sys.argv[1:]
    if len(args) == 4 and args[0] == "seed":
        seed(args[1].rstrip("/"), args[2], args[3])
    elif len(args) == 2 and args[0] == "run":
        with open(args[1]) as f:
            Scenario(json.load(f)).run()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
