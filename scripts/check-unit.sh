#!/usr/bin/env bash
# Checks systemd/giftd.service (run by scripts/test.sh):
#   1. its exposure under `systemd-analyze security --offline=yes` is 1.5 or lower;
#   2. `systemd-analyze verify` accepts it, silently, with ExecStart= pointing at the giftd just
#      built (verify refuses a unit whose binary does not exist, and /usr/local/bin/giftd does not
#      exist on a build machine);
#   3. the directives giftd depends on are there (Type=notify with NotifyAccess=main, the state
#      directory, the address families it uses) and none that would break it (PrivateNetwork=,
#      an IP deny list);
#   4. giftd itself, run as `giftd demo` (the real daemon, its SQLite store in WAL mode with its
#      -wal/-shm files, the health port, in-process tgsim) under strace, does nothing the unit
#      forbids: every system call is in SystemCallFilter='s set (expanded by this systemd), every
#      socket is AF_INET/AF_INET6/AF_UNIX, every file it writes is under its state directory
#      (ProtectSystem=strict), it reads no /proc file outside its own process (ProcSubset=pid),
#      it makes no memory writable and executable (MemoryDenyWriteExecute=), and it sends
#      READY=1 to NOTIFY_SOCKET.
# No systemd runs as PID 1 where this runs, so the unit itself is not started: point 4 runs
# giftd without the sandbox and checks its behaviour against what the sandbox allows.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

UNIT=systemd/giftd.service
MAX_EXPOSURE=1.5

fail() { printf 'check-unit: %s\n' "$*" >&2; exit 1; }
need() {
  command -v "$1" >/dev/null || fail "$1 not found: install $2 (apt-get install $2; .ci/run does it)"
}
need systemd-analyze systemd
need strace strace
need python3 python3

# 1. Exposure. --threshold is the exposure times ten (an integer, 0..100).
threshold=$(python3 -c "print(round($MAX_EXPOSURE * 10))")
report=$(systemd-analyze security --offline=yes --no-pager "$UNIT" 2>&1) && rc=0 || rc=$?
overall=$(grep -o 'Overall exposure level for [^:]*: [0-9.]*' <<<"$report" | awk '{print $NF}')
[[ -n $overall ]] || fail "systemd-analyze security printed no overall exposure (exit $rc):
$report"
if ! systemd-analyze security --offline=yes --threshold="$threshold" "$UNIT" >/dev/null 2>&1; then
  fail "$UNIT exposure $overall is above $MAX_EXPOSURE: harden it again (systemd-analyze security --offline=yes $UNIT lists what is missing)"
fi
echo "check-unit: exposure $overall (at most $MAX_EXPOSURE)"

# 2. verify, on a copy whose ExecStart= is the giftd just built.
cargo build --quiet --bin giftd
GIFTD=$PWD/target/debug/giftd
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
grep -q '^ExecStart=/usr/local/bin/giftd ' "$UNIT" ||
  fail "$UNIT: ExecStart= no longer starts /usr/local/bin/giftd: update this script"
sed "s#^ExecStart=/usr/local/bin/giftd #ExecStart=$GIFTD #" "$UNIT" >"$tmp/giftd.service"
verify=$(systemd-analyze verify "$tmp/giftd.service" 2>&1) ||
  fail "systemd-analyze verify rejects $UNIT:
$verify"
[[ -z $verify ]] || fail "systemd-analyze verify warns about $UNIT (fix every warning):
$verify"
echo "check-unit: systemd-analyze verify: clean"

# 3. The directives giftd depends on (values as systemd reads them, from the unit file).
python3 - "$UNIT" <<'EOF'
import sys
path = sys.argv[1]
values = {}
for line in open(path):
    line = line.strip()
    if not line or line[0] in "#;[":
        continue
    key, _, value = line.partition("=")
    values.setdefault(key, []).append(value)
problems = []
def want(key, value, why):
    if value not in values.get(key, []):
        problems.append(f"{key}={value} is missing: {why}")
want("Type", "notify", "giftd reports READY=1 after its first reconciliation")
want("NotifyAccess", "main", "sd_notify comes from giftd's main process")
want("StateDirectory", "giftd", "the SQLite file with its -wal/-shm files and the session files live in /var/lib/giftd")
families = " ".join(values.get("RestrictAddressFamilies", [])).split()
for family, why in [("AF_INET", "Telegram and Supabase"), ("AF_INET6", "Telegram and Supabase over IPv6"),
                    ("AF_UNIX", "the notify socket")]:
    if families and family not in families:
        problems.append(f"RestrictAddressFamilies= lacks {family}: needed for {why}")
if any(v in ("yes", "true", "1") for v in values.get("PrivateNetwork", [])):
    problems.append("PrivateNetwork= cuts giftd off from Telegram")
if values.get("IPAddressDeny"):
    problems.append("IPAddressDeny= would block Telegram data centres giftd learns at run time")
if problems:
    sys.exit("check-unit: " + "\ncheck-unit: ".join(problems))
print("check-unit: directives giftd needs: present")
EOF

# 4. giftd's behaviour against the sandbox.
expand() { # the system calls of a SystemCallFilter group, recursively
  systemd-analyze syscall-filter --no-pager "$1" | tail -n +2 | sed 's/#.*//' | awk 'NF {print $1}' |
    while read -r entry; do
      if [[ $entry == @* ]]; then expand "$entry"; else echo "$entry"; fi
    done
}
allow=() deny=()
while IFS= read -r line; do
  value=${line#SystemCallFilter=}
  if [[ $value == "~"* ]]; then deny+=(${value#\~}); else allow+=($value); fi
done < <(grep '^SystemCallFilter=' "$UNIT")
((${#allow[@]})) || fail "$UNIT has no SystemCallFilter= allow list: update this script"
for g in "${allow[@]}"; do if [[ $g == @* ]]; then expand "$g"; else echo "$g"; fi; done | sort -u >"$tmp/allow"
for g in "${deny[@]}"; do if [[ $g == @* ]]; then expand "$g"; else echo "$g"; fi; done | sort -u >"$tmp/deny"
comm -23 "$tmp/allow" "$tmp/deny" >"$tmp/allowed"

state=$tmp/state
mkdir -p "$state"
python3 - "$tmp/notify.sock" "$tmp/notify.log" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(120)
with open(sys.argv[2], "w") as out:
    try:
        while True:
            out.write(s.recv(4096).decode() + "\n")
            out.flush()
    except socket.timeout:
        pass
EOF
listener=$!
for _ in $(seq 50); do [[ -S $tmp/notify.sock ]] && break; sleep 0.1; done
# As root, giftd runs as nobody, as the unit runs it as giftd: SQLite, for one, chowns its
# -wal/-shm files only when it runs as root.
as_user=()
if [[ $(id -u) == 0 ]]; then
  need setpriv util-linux
  chmod 0755 "$tmp" && chown nobody "$state" && chmod 0777 "$tmp/notify.sock"
  as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
fi
(cd / && NOTIFY_SOCKET=$tmp/notify.sock strace -f -qq -s 256 -o "$tmp/strace" \
  "${as_user[@]}" "$GIFTD" demo --burst 50 --state-dir "$state" >"$tmp/demo.out" 2>&1) ||
  { kill "$listener" 2>/dev/null; fail "giftd demo failed under strace:
$(tail -20 "$tmp/demo.out")"; }
sleep 0.2
kill "$listener" 2>/dev/null || true

python3 - "$tmp/strace" "$tmp/allowed" "$state" "$tmp/notify.log" "$GIFTD" <<'EOF'
import os, re, sys
trace, allowed_file, state, notify, giftd = sys.argv[1:]
allowed = set(open(allowed_file).read().split())
used, problems, wrote = set(), [], set()
call = re.compile(r"^\d+\s+([a-z0-9_]+)\((.*)")
write_flags = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC")
def path_arg(args, index):
    found = re.findall(r'"((?:[^"\\]|\\.)*)"', args)
    return found[index] if len(found) > index else None
def writable(path):
    p = os.path.normpath(path if path.startswith("/") else os.path.join("/", path))
    return p == state or p.startswith(state + "/") or p in ("/dev/null",)
started = False  # what setpriv does before it runs giftd is not giftd's
for line in open(trace):
    m = call.match(line)
    if not m:
        continue
    name, args = m.groups()
    if not started:
        started = name == "execve" and args.startswith(f'"{giftd}"') and line.rstrip().endswith("= 0")
        continue
    used.add(name)
    if name in ("openat", "open", "creat"):
        path = path_arg(args, 0)
        if path is None:
            continue
        if name == "creat" or any(f in args for f in write_flags):
            wrote.add(os.path.basename(path))
        if (name == "creat" or any(f in args for f in write_flags)) and not writable(path):
            problems.append(f"writes {path} outside its state directory (ProtectSystem=strict): {line.strip()}")
        parts = os.path.normpath(path).split("/")
        # glibc's malloc reads overcommit_memory now and then when it trims an arena, and
        # goes on without it when it cannot open it.
        harmless = ("/proc/sys/vm/overcommit_memory",)
        if (len(parts) > 2 and parts[1] == "proc" and path not in harmless
                and not (parts[2] in ("self", "thread-self") or parts[2].isdigit())):
            problems.append(f"reads {path}, hidden by ProcSubset=pid: {line.strip()}")
    elif name in ("mkdir", "mkdirat", "unlink", "unlinkat", "rename", "renameat", "renameat2"):
        for i in range(2):
            path = path_arg(args, i)
            if path is not None and not writable(path):
                problems.append(f"changes {path} outside its state directory: {line.strip()}")
    elif name == "socket":
        family = args.split(",")[0].strip()
        if family not in ("AF_INET", "AF_INET6", "AF_UNIX"):
            problems.append(f"opens an {family} socket (RestrictAddressFamilies=): {line.strip()}")
    elif name in ("mmap", "mprotect", "pkey_mprotect"):
        prot = args.split(",")[2].strip()
        if "PROT_EXEC" in prot and ("PROT_WRITE" in prot or name != "mmap"):
            problems.append(f"makes memory executable (MemoryDenyWriteExecute=): {line.strip()}")
for name in sorted(used - allowed):
    problems.append(f"system call {name} is not allowed by SystemCallFilter= (it would fail with EPERM)")
for f in ("giftd.sqlite3", "giftd.sqlite3-wal", "giftd.sqlite3-shm"):
    if f not in wrote:
        problems.append(f"giftd did not write {f}: the check no longer covers SQLite in WAL mode")
notes = open(notify).read()
if "READY=1" not in notes:
    problems.append(f"giftd sent no READY=1 to NOTIFY_SOCKET (got {notes!r})")
if not started:
    problems.append(f"strace shows no execve of {giftd}")
if problems:
    sys.exit("check-unit: " + "\ncheck-unit: ".join(problems))
print(f"check-unit: giftd demo under strace: {len(used)} system calls, all allowed; "
      "sockets, writes, /proc and memory within the unit's limits; READY=1 sent")
EOF
