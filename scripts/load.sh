#!/usr/bin/env bash
# Load test of the agent on the virtual bench: ROUNDS rounds (default 10), each a burst of 1,000
# plug/unplug events over eight programmers followed by eight programmers restoring bricked
# ATmega32U4 boards at once. Samples the agent's resident memory twice a second and prints one line
# per round, then the journal tally; then the idle costs of eight programmers polling for boards and the
# time from a plug event to the first command; then eight restores at once against one alone, in real
# time. Usage: [IDLE=SECONDS] scripts/load.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/bootmedic
[ -x "$bin" ] || bin=.build/debug/bootmedic
firmware=$(scripts/firmware-dir.sh)
rounds=${1:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$rounds" "$work/scenario.toml" <<'PY'
import sys
rounds, path = int(sys.argv[1]), sys.argv[2]
round_seconds = 4.0
with open(path, "w") as f:
    f.write("poll_interval = 0.02\n")
    def step(at, **kv):
        f.write("\n[[step]]\nat = %.3f\n" % at)
        for k, v in kv.items():
            f.write('%s = %s\n' % (k, '"%s"' % v if isinstance(v, str) else str(v).lower()))
    for r in range(rounds):
        t = r * round_seconds
        for i in range(500):
            name = "burst-%d-%d" % (r, i)
            step(t, plug=name, programmer="usbasp" if i % 2 == 0 else "usbtiny")
            step(t, unplug=name)
        for i in range(8):
            step(t + 0.1, plug="bench-%d" % i, programmer="usbasp" if i % 2 == 0 else "usbtiny")
            step(t + 0.15, attach="bench-%d" % i, part="atmega32u4")
        for i in range(8):
            step(t + round_seconds - 0.2, unplug="bench-%d" % i)
PY

# The agent logs to journald when it runs (the tally below reads it back by _PID), else to the console.
"$bin" agent --config config/examples/guide-rules.toml --firmware-dir "$firmware" --backup-dir "$work/backups" \
  --virtual-bench "$work/scenario.toml" > "$work/agent.log" 2>&1 &
agent=$!
python3 - "$agent" "$rounds" <<'PY'
import sys, time
pid, rounds = int(sys.argv[1]), int(sys.argv[2])
def rss():
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    except FileNotFoundError:
        return None
start, peak, last_round = time.time(), 0, -1
print("| round | elapsed s | RSS MiB | peak MiB |")
print("|---|---|---|---|")
while True:
    m = rss()
    if m is None:
        break
    peak = max(peak, m)
    r = int((time.time() - start) // 4.0)
    if r != last_round and r < rounds:
        print("| %d | %.1f | %d | %d |" % (r + 1, time.time() - start, m, peak), flush=True)
        last_round = r
    time.sleep(0.5)
print("agent exited after %.1f s; peak RSS %d MiB" % (time.time() - start, peak))
PY
wait "$agent"
# Tally what reached the journal (or the console log when no journald runs).
if [ -S /run/systemd/journal/socket ]; then
  journalctl --sync 2>/dev/null || sleep 1
  journalctl _PID="$agent" -o json --no-pager > "$work/entries.json"
else
  : > "$work/entries.json"
fi
python3 - "$work/entries.json" "$rounds" <<'PY'
import json, sys, collections
ids = {"4333a14dda834fe090c34aab938cb21a": "programmers added", "2811e27351aa44f3bc147fb1c00a397b": "programmers removed",
       "f5b3ae2d1d914a1ebba540e8109c9a9b": "restored", "d02e1e2fa81049678dae0160f32217eb": "failed"}
tally = collections.Counter()
for line in open(sys.argv[1]):
    entry = json.loads(line)
    tally[ids.get(entry.get("MESSAGE_ID"), "other")] += 1
rounds = int(sys.argv[2])
print("journal: " + ", ".join("%s %d" % (k, tally[k]) for k in ["programmers added", "programmers removed", "restored", "failed"]))
print("expected: programmers added %d, programmers removed %d, restored %d, failed 0" % (rounds * 508, rounds * 508, rounds * 8))
PY

# Idle costs: eight programmers plugged, no board on any cable, each slot looking for a board at the
# agent's own rate (POLL, default the agent's --poll-interval default), for IDLE seconds (default 30).
# CPU is the agent's user+system time over the idle window, after start-up.
idle=${IDLE:-30}
poll=${POLL:-$("$bin" agent --help | awk '/^  --poll-interval </ { f = 1 } f && /default:/ { gsub(/.*default: |\).*/, ""); print; exit }')}
python3 - "$idle" "$work/idle.toml" "$poll" <<'PY'
import sys
idle, path, poll = float(sys.argv[1]), sys.argv[2], sys.argv[3]
with open(path, "w") as f:
    f.write("poll_interval = %s\n" % poll)
    for i in range(8):
        f.write('\n[[step]]\nat = %.1f\nplug = "idle-%d"\nprogrammer = "%s"\n' % (0.5 * i, i, "usbasp" if i % 2 == 0 else "usbtiny"))
    for i in range(8):
        f.write('\n[[step]]\nat = %.1f\nunplug = "idle-%d"\n' % (idle, i))
PY
"$bin" agent --config config/examples/guide-rules.toml --firmware-dir "$firmware" --backup-dir "$work/backups" \
  --poll-interval "$poll" --virtual-bench "$work/idle.toml" --latency-report "$work/latency.json" > /dev/null 2>&1 &
agent=$!
python3 - "$agent" "$idle" <<'PY'
import os, sys, time
pid, idle = int(sys.argv[1]), float(sys.argv[2])
hz = os.sysconf("SC_CLK_TCK")
def sample():
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    rss = int(open("/proc/%d/statm" % pid).read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 2**20
    return (int(fields[11]) + int(fields[12])) / hz, time.time(), rss
time.sleep(5)
cpu0, t0, _ = sample()
time.sleep(idle - 6)
cpu1, t1, rss = sample()
print("idle agent, 8 programmers polling: %.2f%% of a core over %.0f s, RSS %d MiB" % (100 * (cpu1 - cpu0) / (t1 - t0), t1 - t0, rss))
PY
wait "$agent"
python3 - "$work/latency.json" <<'PY'
import json, statistics, sys
ms = sorted(json.load(open(sys.argv[1]))["plugToFirstCommand"])
print("plug event to first command (virtual bench): median %.1f ms, max %.1f ms over %d programmers" % (statistics.median(ms), ms[-1], len(ms)))
PY

# From cable to first write: the same eight idle slots at the same rate, and a factory ATmega32U4 put on
# each cable at a scattered moment, five times over; the milliseconds from each board's arrival to the
# first erase or write its restore sent (the rule's health check and backup come before).
python3 - "$work/arrival.toml" "$poll" <<'PY'
import random, sys
path, poll = sys.argv[1], sys.argv[2]
random.seed(17)
steps = [(0.1 * i, 'plug = "arrive-%d"\nprogrammer = "%s"' % (i, "usbasp" if i % 2 == 0 else "usbtiny")) for i in range(8)]
for r in range(5):
    t = 2.0 + 4.0 * r
    for i in range(8):
        steps.append((t + random.uniform(0, 1.0), 'attach = "arrive-%d"\npart = "atmega32u4"' % i))
        steps.append((t + 3.5, 'detach = "arrive-%d"' % i))
steps += [(22.5, 'unplug = "arrive-%d"' % i) for i in range(8)]
with open(path, "w") as f:
    f.write("poll_interval = %s\n" % poll)
    for at, body in sorted(steps, key=lambda s: s[0]):
        f.write("\n[[step]]\nat = %.3f\n%s\n" % (at, body))
PY
"$bin" agent --config config/examples/guide-rules.toml --firmware-dir "$firmware" --backup-dir "$work/backups" \
  --poll-interval "$poll" --virtual-bench "$work/arrival.toml" --latency-report "$work/arrival.json" > /dev/null 2>&1
python3 - "$work/arrival.json" "$poll" <<'PY'
import json, statistics, sys
ms = sorted(json.load(open(sys.argv[1]))["attachToFirstWrite"])
print("board on the cable to its first write (virtual bench, looks every %s s): median %.0f ms, max %.0f ms over %d boards"
      % (sys.argv[2], statistics.median(ms), ms[-1], len(ms)))
PY
# The udev half: a real libudev monitor fed a real netlink message in a private network namespace
# (needs root for unshare); the time from sending the add event to the agent's slot for it.
if unshare -n true 2>/dev/null; then
  for _ in 1 2 3 4 5; do unshare -n "$bin" self-test netlink 2>&1 >/dev/null | sed -n 's/^netlink add event to bench slot: \([0-9.]*\) ms$/\1/p'; done \
    | sort -n | awk '{ v[NR] = $1 } END { printf "netlink add event to bench slot: median %.2f ms, max %.2f ms over %d runs\n", v[int((NR + 1) / 2)], v[NR], NR }'
fi

# Eight restores at once against one alone, in real time: the scenario's `real_time` holds every simulated
# USB programmer and chip to the wall clock, so a restore takes as long as the hardware would and
# concurrent slots overlap (or queue) as they would on a bench. A factory ATmega32U4 behind a USBasp,
# then one behind a USBtinyISP, each alone; then four of each at once. Times from the journal.
if [ -S /run/systemd/journal/socket ]; then
  cat > "$work/parallel.toml" <<'TOML'
poll_interval = 0.05
real_time = true
TOML
  python3 - "$work/parallel.toml" <<'PY'
import sys
with open(sys.argv[1], "a") as f:
    def step(at, **kv):
        f.write("\n[[step]]\nat = %.1f\n" % at + "".join('%s = "%s"\n' % kv_ for kv_ in kv.items()))
    for n, (name, kind, at) in enumerate([("alone-usbasp", "usbasp", 0.0), ("alone-usbtiny", "usbtiny", 9.0)]):
        step(at, plug=name, programmer=kind); step(at + 0.5, attach=name, part="atmega32u4"); step(at + 8.5, unplug=name)
    for i in range(8):
        name = "together-%d" % i
        step(18.0, plug=name, programmer="usbasp" if i % 2 == 0 else "usbtiny")
        step(18.5, attach=name, part="atmega32u4")
        step(28.0, unplug=name)
PY
  "$bin" agent --config config/examples/guide-rules.toml --firmware-dir "$firmware" --backup-dir "$work/backups" \
    --virtual-bench "$work/parallel.toml" > /dev/null 2>&1 &
  agent=$!
  python3 - "$agent" > "$work/cpu.txt" <<'PY'
import os, sys, time
pid = int(sys.argv[1])
hz = os.sysconf("SC_CLK_TCK")
def cpu():
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / hz
time.sleep(18.0)
c0 = cpu()
time.sleep(9.5)
print("%.2f" % (cpu() - c0))
PY
  wait "$agent"
  journalctl --sync 2>/dev/null || sleep 1
  journalctl _PID="$agent" -o json --no-pager > "$work/parallel.json"
  python3 - "$work/parallel.json" "$(cat "$work/cpu.txt")" <<'PY'
import collections, json, statistics, sys
started, ended = {}, {}
for line in open(sys.argv[1]):
    e = json.loads(line)
    job, at = e.get("BOOTMEDIC_JOB"), int(e["__REALTIME_TIMESTAMP"]) / 1e6
    if e.get("MESSAGE_ID") == "7b8975c1f4d442b0b1b32f239cb1b726":
        started[job] = (e["BOOTMEDIC_PORT"].removeprefix("virtual-"), e["BOOTMEDIC_PROGRAMMER"], at)
    elif e.get("MESSAGE_ID") == "f5b3ae2d1d914a1ebba540e8109c9a9b":
        ended[job] = (at, int(e["BOOTMEDIC_DURATION_MS"]) / 1e3)
alone, together = {}, collections.defaultdict(list)
first, last = None, None
for job, (name, kind, t0) in started.items():
    if job not in ended:
        continue
    wall = ended[job][0] - t0
    if name.startswith("alone"):
        alone[kind] = wall
    else:
        together[kind].append(wall)
        first, last = min(first or t0, t0), max(last or 0, ended[job][0])
count = sum(len(v) for v in together.values())
print("one restore alone (wall s, job start to restored): " + ", ".join("%s %.2f" % (k, alone[k]) for k in sorted(alone)))
print("eight at once: %d of 8 restored; " % count + ", ".join(
    "%s median %.2f s, slowest %.2f s (%.2f× alone)" % (k, statistics.median(v), max(v), max(v) / alone[k]) for k, v in sorted(together.items()) if k in alone)
    + "; all eight within %.2f s; agent CPU %s s over the 9.5 s" % (last - first, sys.argv[2]))
PY
fi
