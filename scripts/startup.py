#!/usr/bin/env python3
"""Start-up of bootmedic binaries side by side: `scripts/startup.py N BIN...` runs each binary's
`restore` with no programmer plugged in (it parses config/rules.toml, opens libusb, finds nothing and
exits) and `--version`, N times each, interleaved so that a neighbour's load falls on all alike, and
prints the median and 10th percentile of the wall time from spawn to exit. Copy the binaries to one
folder first: where a binary lies (overlay, tmpfs) shifts its exec time by half a millisecond."""
import os, statistics, sys, time
n = int(sys.argv[1]); bins = sys.argv[2:]
cmds = {"restore": ["restore", "--rules", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "config", "rules.toml"), "--rule", "pro-micro-5v", "--programmer", "usbasp"], "--version": ["--version"]}
null = os.open("/dev/null", os.O_WRONLY)
times = {(b, c): [] for b in bins for c in cmds}
for i in range(n):
    for b in bins:
        for c, args in cmds.items():
            t = time.perf_counter_ns()
            pid = os.posix_spawn(b, [b] + args, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, null, 1), (os.POSIX_SPAWN_DUP2, null, 2)])
            os.waitpid(pid, 0)
            times[(b, c)].append((time.perf_counter_ns() - t) / 1e6)
for (b, c), v in times.items():
    v.sort()
    print(f"{b:45} {c:10} median {statistics.median(v):6.2f} ms  p10 {v[len(v)//10]:6.2f} ms")
