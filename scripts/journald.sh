#!/usr/bin/env bash
# Makes sure a systemd-journald answers on /run/systemd/journal. A bench PC runs it under systemd; a CI
# machine has no systemd as PID 1 and may even carry the sockets of a journald that is long gone, which
# turn every sd_journal_send into ECONNREFUSED. So: probe, and if nothing answers, start one by hand.
set -euo pipefail
answers() { systemd-cat -t bootmedic-probe true 2>/dev/null; }
answers && exit 0
mkdir -p /run/systemd/journal
exec 9>/run/systemd/journal/.bootmedic-start.lock
flock 9
answers && exit 0
rm -f /run/systemd/journal/{socket,stdout,dev-log,io.systemd.journal}
# journald outlives this script: it must not inherit any descriptor of ours (the lock, or the socket by
# which the caller's process library notices that this script has exited).
(
  for fd in /proc/$BASHPID/fd/*; do
    n=${fd##*/}
    if (( n > 2 )); then eval "exec $n>&-" 2>/dev/null || true; fi
  done
  cd /
  exec setsid /lib/systemd/systemd-journald </dev/null >/dev/null 2>&1
) &
for _ in $(seq 200); do
  answers && exit 0
  sleep 0.05
done
echo "journald.sh: systemd-journald did not start answering within 10 s" >&2
exit 1
