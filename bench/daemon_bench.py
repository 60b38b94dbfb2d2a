#!/usr/bin/env python3
"""Helpers of bench/daemon.sh (the daemon's figures in BENCHMARKS.md); standard library only.

  daemon_bench.py listener PORT TOKEN LOG -- COMMAND...
      The "obvious glue" the daemon is compared with: an HTTP server that takes the registry's
      notifications (`Authorization: Bearer TOKEN`), answers 200 at once and runs COMMAND
      (`tagwatch run --once`) for every push event that names a tag; events that arrive while COMMAND
      runs make it run once more afterwards. LOG gets `event WALLCLOCK` and `run START END CODE` lines.

  daemon_bench.py pushes COUNT OUT.csv SKOPEO_SRC NAME=REGISTRY_REF,HOOK_FILE,BARE_REPO,FILE,EVENTS ...
      COUNT rounds; each round pushes a new tag `1.0.ROUND` with `skopeo copy SKOPEO_SRC
      docker://REGISTRY_REF:1.0.ROUND` for every NAME in turn (interleaved, so both see the same
      machine load) and waits until the remote's post-receive hook wrote a line to HOOK_FILE. Latency =
      the hook's timestamp - the moment skopeo exited. EVENTS is a file whose new lines say when the
      event reached the consumer (`daemon:LOG` reads the daemon's JSON log, `listener:LOG` the listener's).
      The pushed commit must deploy `:1.0.ROUND` in FILE of BARE_REPO.

  daemon_bench.py summary OUT.csv
      Median, p90 and worst of each column, per NAME, and the ratio of medians.

  daemon_bench.py sample PID SECONDS EVERY OUT.csv
      Samples CPU time (utime + stime) and RSS of PID every EVERY seconds for SECONDS; prints a row
      per minute and the whole-window and steady-state (after the first minute) figures.

  daemon_bench.py burst DAEMON_URL TOKEN REGISTRY_HOST PREFIX COUNT TAG LOG
      One distribution envelope with COUNT push events (PREFIX-0001 ... :TAG) to the daemon's
      `/webhook/distribution`, then waits until the daemon's JSON LOG's `webhook events settled` lines
      count COUNT images (an image's event settles once a listing holds the pushed tag). Prints
      `seconds=` from the envelope's first event reaching the daemon to the last settled line.
"""

import datetime
import http.server
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request


def wallclock_of(timestamp):
    """RFC 3339 with a `Z` (tracing's JSON timestamps) -> seconds since the epoch."""
    text = timestamp.rstrip("Z")
    if "." in text:
        base, fraction = text.split(".")
        fraction = (fraction + "000000")[:6]
        text = f"{base}.{fraction}"
    parsed = datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


# --- listener ----------------------------------------------------------------------------------------


def listener(port, token, log_path, command):
    wanted = threading.Event()
    log = open(log_path, "a", buffering=1)
    lock = threading.Lock()

    def write(line):
        with lock:
            log.write(line + "\n")

    def runner():
        while True:
            wanted.wait()
            wanted.clear()
            start = time.time()
            code = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
            write(f"run {start:.6f} {time.time():.6f} {code}")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            arrived = time.time()
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Authorization") != f"Bearer {token}":
                self.send_response(401)
                self.end_headers()
                return
            self.send_response(200)
            self.end_headers()
            try:
                events = json.loads(body).get("events", [])
            except ValueError:
                return
            for event in events:
                target = event.get("target", {})
                media = target.get("mediaType", "")
                if event.get("action") == "push" and target.get("tag") and ".layer." not in media:
                    write(f"event {arrived:.6f} {target['repository']}:{target['tag']}")
                    wanted.set()

        def log_message(self, *args):
            pass

    threading.Thread(target=runner, daemon=True).start()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.serve_forever()


# --- pushes -------------------------------------------------------------------------------------------


class EventSource:
    """New lines of a consumer's log that say when an event reached it."""

    def __init__(self, spec):
        self.kind, self.path = spec.split(":", 1)
        self.offset = os.path.getsize(self.path) if os.path.exists(self.path) else 0

    def first_new(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        times = []
        for line in data.decode(errors="replace").splitlines():
            if self.kind == "listener" and line.startswith("event "):
                times.append(float(line.split()[1]))
            elif self.kind == "daemon" and "re-checking the image now" in line:
                times.append(wallclock_of(json.loads(line)["timestamp"]))
        return min(times) if times else None


def line_count(path):
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for _ in f)


def pushes(count, out, source, targets):
    parsed = []
    for spec in targets:
        name, rest = spec.split("=", 1)
        ref, hook, bare, file, events = rest.split(",")
        parsed.append((name, ref, hook, bare, file, EventSource(events)))
    with open(out, "w") as csv:
        csv.write("name,round,skopeo_s,push_to_commit_ms,event_to_commit_ms,push_to_event_ms\n")
        for round_ in range(1, count + 1):
            tag = f"1.0.{round_}"
            for name, ref, hook, bare, file, events in parsed:
                before = line_count(hook)
                started = time.time()
                subprocess.run(
                    ["skopeo", "copy", "-q", "--dest-tls-verify=false", source, f"docker://{ref}:{tag}"],
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                pushed = time.time()
                deadline = pushed + 30
                while line_count(hook) <= before:
                    if time.time() > deadline:
                        sys.exit(f"{name}: no commit on the remote 30 s after pushing {tag}")
                    time.sleep(0.002)
                # The hook's line: `WALLCLOCK NEW_COMMIT REF`
                with open(hook) as f:
                    committed_at, commit, _ = f.read().splitlines()[before].split()
                committed_at = float(committed_at)
                content = subprocess.run(
                    ["git", "--git-dir", bare, "show", f"{commit}:{file}"],
                    check=True, capture_output=True, text=True,
                ).stdout
                if f":{tag}\"" not in content and f":{tag}\n" not in content:
                    sys.exit(f"{name}: the commit {commit} does not deploy {tag}:\n{content}")
                # The next round starts from a quiet consumer: let a glue run finish completely.
                time.sleep(0.3)
                event = events.first_new()
                event_ms = (committed_at - event) * 1000 if event else float("nan")
                push_event_ms = (event - pushed) * 1000 if event else float("nan")
                row = (f"{name},{round_},{pushed - started:.3f},{(committed_at - pushed) * 1000:.1f},"
                       f"{event_ms:.1f},{push_event_ms:.1f}")
                csv.write(row + "\n")
                csv.flush()
                print(row, flush=True)


def summary(path):
    rows = {}
    with open(path) as f:
        header = f.readline().strip().split(",")
        for line in f:
            values = dict(zip(header, line.strip().split(",")))
            rows.setdefault(values["name"], []).append(values)
    medians = {}
    for name, values in rows.items():
        print(f"{name} ({len(values)} pushes):")
        for column in header[2:]:
            numbers = sorted(float(v[column]) for v in values if v[column] != "nan")
            if not numbers:
                continue
            p90 = numbers[min(len(numbers) - 1, int(round(0.9 * len(numbers))) - 1)]
            median = statistics.median(numbers)
            medians[(name, column)] = median
            print(f"  {column:20} median {median:8.1f}  p90 {p90:8.1f}  worst {numbers[-1]:8.1f}  best {numbers[0]:8.1f}")
    names = list(rows)
    if len(names) == 2:
        a, b = names
        ratio = medians[(b, "push_to_commit_ms")] / medians[(a, "push_to_commit_ms")]
        print(f"ratio of push_to_commit medians {b} / {a}: {ratio:.2f}x")


# --- idle sampling ------------------------------------------------------------------------------------


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid):
    """(VmRSS, RssAnon, RssFile) in MB: file-backed pages are libgit2's mapped pack files."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", float("nan")), values.get("RssAnon", float("nan")), values.get("RssFile", float("nan"))


def sample(pid, seconds, every, out):
    start = time.time()
    first_cpu = cpu_seconds(pid)
    samples = []
    with open(out, "w") as csv:
        csv.write("elapsed_s,cpu_s,rss_mb,rss_anon_mb,rss_file_mb\n")
        while True:
            now = time.time() - start
            row = (now, cpu_seconds(pid) - first_cpu, *rss_mb(pid))
            samples.append(row)
            csv.write(f"{row[0]:.1f},{row[1]:.2f},{row[2]:.1f},{row[3]:.1f},{row[4]:.1f}\n")
            csv.flush()
            if now >= seconds:
                break
            time.sleep(max(0.0, every - (time.time() - start - now)))
    print("minute  cpu%   rss_mb(max)  anon  file")
    minute = 0
    while (minute + 1) * 60 <= samples[-1][0] + every / 2:
        window = [s for s in samples if minute * 60 - every / 2 <= s[0] <= (minute + 1) * 60 + every / 2]
        cpu = (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0]) * 100
        top = max(window, key=lambda s: s[2])
        print(f"{minute + 1:6d}  {cpu:5.2f}  {top[2]:6.1f}  {top[3]:6.1f}  {top[4]:5.1f}")
        minute += 1

    def figure(rows, label):
        cpu = (rows[-1][1] - rows[0][1]) / (rows[-1][0] - rows[0][0]) * 100
        rss = [s[2] for s in rows]
        anon = [s[3] for s in rows]
        print(f"{label}: CPU {cpu:.2f} % of one core ({rows[-1][1] - rows[0][1]:.1f} s in {rows[-1][0] - rows[0][0]:.0f} s), "
              f"RSS min {min(rss):.1f} / median {statistics.median(rss):.1f} / max {max(rss):.1f} MB "
              f"(anonymous max {max(anon):.1f} MB)")

    figure(samples, "whole window")
    steady = [s for s in samples if s[0] >= 60 - every / 2]
    if len(steady) > 1:
        figure(steady, "after the first minute")


# --- burst --------------------------------------------------------------------------------------------


def burst(url, token, host, prefix, count, tag, log):
    events = [
        {
            "id": f"bench-{i}",
            "timestamp": "2026-01-01T00:00:00Z",
            "action": "push",
            "target": {
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "repository": f"{prefix}-{i:04d}",
                "tag": tag,
            },
            "request": {"host": host, "method": "PUT"},
        }
        for i in range(1, count + 1)
    ]
    body = json.dumps({"events": events}).encode()
    offset = os.path.getsize(log)
    request = urllib.request.Request(
        f"{url}/webhook/distribution",
        data=body,
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/vnd.docker.distribution.events.v1+json",
        },
    )
    sent = time.time()
    with urllib.request.urlopen(request) as answer:
        if answer.status != 202:
            sys.exit(f"the daemon answered {answer.status}")
    first_event = None
    settled = 0
    last = None
    buffer = b""
    deadline = time.time() + 300
    with open(log, "rb") as f:
        f.seek(offset)
        while settled < count:
            chunk = f.read()
            if not chunk:
                if time.time() > deadline:
                    sys.exit(f"events of only {settled} of {count} images settled after 300 s")
                time.sleep(0.05)
                continue
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if b"re-checking the image now" in line and first_event is None:
                    first_event = wallclock_of(json.loads(line)["timestamp"])
                elif b"webhook events settled" in line:
                    # An image's event settles once its listing holds the pushed tag (else the
                    # daemon lists it again): the lines' counts add up to every image of the burst.
                    record = json.loads(line)
                    settled += record["fields"]["images"]
                    last = wallclock_of(record["timestamp"])
    if settled != count:
        sys.exit(f"events of {settled} images settled for a burst over {count}")
    print(f"seconds={last - first_event:.3f} from_post={last - sent:.3f} events={count} "
          f"body_kib={len(body) / 1024:.0f}")

def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    command = args[0]
    if command == "listener":
        split = args.index("--")
        listener(int(args[1]), args[2], args[3], args[split + 1:])
    elif command == "pushes":
        pushes(int(args[1]), args[2], args[3], args[4:])
    elif command == "summary":
        summary(args[1])
    elif command == "sample":
        sample(int(args[1]), float(args[2]), float(args[3]), args[4])
    elif command == "burst":
        burst(args[1], args[2], args[3], args[4], int(args[5]), args[6], args[7])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
