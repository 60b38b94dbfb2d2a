#!/usr/bin/env python3
"""perf_phases.py - where a `tagwatch plan` run spends its CPU, by phase, from `perf script` output.

Usage:
  perf record -F 4999 --call-graph dwarf,32768 -o perf.data -- tagwatch --config C plan > /dev/null
  perf script -i perf.data --no-inline -F comm,tid,time,ip,sym | python3 bench/perf_phases.py [--top N]

Each sample is given to the first phase (in the order below) whose marker occurs in its call stack;
the shares are of all samples of the process (every thread). `--top N` also lists the N hottest
leaf functions inside each phase.
"""
import collections
import sys

# (phase, markers): the first phase with a marker in the stack wins, so the order matters.
PHASES = [
    ("libgit2 start-up: OpenSSL loads the system CA bundle (git_runtime_init)", ["git_runtime_init", "git_libgit2_init"]),
    ("git fetch: pack built by the file:// remote side (libgit2 packbuilder)",
     ["git_packbuilder", "find_deltas", "git_delta_create_from_index"]),
    ("git fetch: pack indexed into the cache clone (libgit2 indexer)", ["git_indexer", "git_odb_writepack"]),
    ("git fetch: rest (refs, negotiation, odb)", ["git_remote_fetch", "git_remote_download", "remote::fetch"]),
    ("git: open / init the cache clone", ["Store::open"]),
    ("history walk (rollback detection)", ["recent_commits"]),
    ("scan: tree walk + blob reads (libgit2 odb)", ["Store::list_files", "Store::read_blob", "Store::read_file", "read_capped"]),
    ("decide: matching targets to policies (owners_by_image)", ["owners_by_image"]),
    ("decide: rewrite + re-parse check of each changed file", ["reconcile::rewrite::rewrite"]),
    ("scan: YAML discovery", ["gather::scan", "manifest::discover::discover"]),
    ("decide: the rest", ["decide::decide", "decide::finish"]),
    ("needed_policies / needed_created_times", ["needed_policies", "needed_created_times"]),
    ("tag listings + policy resolution (registry client)", ["resolve_all", "tagwatch::registry", "reqwest", "hyper"]),
    ("config + policies load and validation", ["load_for_repositories", "config::", "Config::load"]),
    ("registry client setup (TLS roots)", ["RegistryClient::new", "rustls_platform_verifier"]),
    ("plan output (JSON lines)", ["commands::plan::run", "serde_json"]),
    ("tokio runtime / thread start and idle", ["tokio::runtime"]),
    ("process start and exit (loader, kernel)", ["_dl_start", "_dl_init", "execve", "exit_mmap", "do_exit", "exit_group"]),
]


def samples(stream):
    """Yields the list of frames (innermost first) of each sample in `perf script` output."""
    for frames, _ in timed_samples(stream):
        yield frames


def timed_samples(stream):
    """Yields (frames, seconds) per sample: the frames innermost first, the sample's timestamp."""
    frames = []
    header = None
    for line in stream:
        line = line.rstrip("\n")
        if not line.strip():
            if header is not None:
                yield frames, stamp(header)
            frames, header = [], None
        elif header is None:
            header = line
        else:
            parts = line.strip().split(None, 1)
            frames.append(parts[1] if len(parts) > 1 else parts[0])
    if header is not None:
        yield frames, stamp(header)


def stamp(header):
    """The timestamp of a `perf script` sample header (`comm tid seconds.micros:`)."""
    for field in header.split():
        if field.endswith(":") and field[:-1].replace(".", "", 1).isdigit():
            return float(field[:-1])
    return 0.0


def main():
    top = 0
    if "--top" in sys.argv:
        top = int(sys.argv[sys.argv.index("--top") + 1])
    phase_count = collections.Counter()
    leaves = collections.defaultdict(collections.Counter)
    spans = {}
    total = 0
    for frames, seconds in timed_samples(sys.stdin):
        total += 1
        stack = "\n".join(frames)
        phase = "other"
        for name, markers in PHASES:
            if any(marker in stack for marker in markers):
                phase = name
                break
        phase_count[phase] += 1
        first, last = spans.get(phase, (seconds, seconds))
        spans[phase] = (min(first, seconds), max(last, seconds))
        leaves[phase][frames[0] if frames else "?"] += 1
    start = min(first for first, _ in spans.values()) if spans else 0.0
    end = max(last for _, last in spans.values()) if spans else 0.0
    print(f"{total} samples over {1000 * (end - start):.0f} ms; CPU share, then the span from the phase's first to last sample (ms after the first sample)")
    for phase, count in phase_count.most_common():
        first, last = spans[phase]
        print(f"{100 * count / total:5.1f} %  {1000 * (first - start):5.0f} – {1000 * (last - start):5.0f} ms  {phase}")
        for leaf, n in leaves[phase].most_common(top):
            print(f"          {100 * n / total:5.1f} %  {leaf[:110]}")


if __name__ == "__main__":
    main()
