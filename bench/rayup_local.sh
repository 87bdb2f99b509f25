#!/usr/bin/env bash
# `ray up cluster-onprem.yaml` for real, on this one machine: an SSH server on the loopback
# interface plays the cluster's head, `ray up` installs raysearch on it with the file's own setup
# commands, a small search on real PTB-XL records is submitted as a Ray job through the head's
# dashboard, its summary is checked, and `ray down` takes the cluster away.
#
#   sudo bash bench/rayup_local.sh [--dry-run] [--worker] [--transcript FILE]
#
# Needs root (a user account, a network namespace, Debian's openssh-server and rsync, installed
# when missing) and Python 3.10+ with venv as /usr/bin/python3. Everything runs inside a network
# namespace that has only its loopback interface, so nothing the script starts (sshd, Ray's head,
# its dashboard) can be reached from outside the machine. The head is the account `raysearch` on
# 127.0.0.1; its Python packages come from a wheelhouse the script downloads first (the namespace
# has no network), given to the account's pip as its only index, so the file's setup commands run
# unchanged. The copy of the file that `ray up` reads differs from cluster-onprem.yaml only in the
# addresses, the SSH key and the workers. --worker also asks for a worker node on 127.0.0.2.
# --dry-run writes and validates that copy and starts nothing. Every step is timed; a failing
# step stops the script with its message, and the exit trap stops, by PID, everything started.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"  # the cluster file's file_mounts name the checkout as "."
PY=${PYTHON:-$REPO/.venv/bin/python}   # the environment `ray up` runs from (raysearch installed)
RAY=$(dirname "$PY")/ray
NS=raysearch-lo
NODE_USER=raysearch
DRY=0 WORKER=0 TRANSCRIPT=""
while [ $# -gt 0 ]; do
    case $1 in
        --dry-run) DRY=1 ;;
        --worker) WORKER=1 ;;
        --transcript) TRANSCRIPT=$2; shift ;;
        *) echo "rayup_local.sh: unknown option $1 (expected --dry-run, --worker, --transcript FILE)" >&2; exit 2 ;;
    esac
    shift
done
WORK=$(mktemp -d /tmp/rayup.XXXXXX)
chmod 755 "$WORK"
# everything to $WORK/full.log; on the terminal (and the transcript) without Ray's SSH command
# lines and without `ray stop`'s complaints about other users' Ray processes (counted instead).
# The filter ignores Ctrl-C and kill, so that the cleanup's lines still get through.
exec > >(trap '' INT TERM; tee "$WORK/full.log" | python3 -u -c '
import sys
other = 0
for line in sys.stdin:
    if "INFO command_runner" in line:  # VINFO/VVINFO: every SSH command spelled out
        continue
    if "Could not terminate" in line:
        other += 1
        continue
    if other and ("Did not find any active Ray processes" in line or "Stopped all" in line):
        print(f"(ray stop: {other} processes of another user left alone)")
        other = 0
    line = line.rstrip("\n")
    print(line if len(line) <= 300 else line[:300] + " [...]", flush=True)
' | tee "${TRANSCRIPT:-/dev/null}") 2>&1
T0=$(date +%s.%N)
SSHD_PID="" CLUSTER_UP=0 MADE_USER=0 MADE_NS=0

say() { printf '%s\n' "$*"; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(date +%s.%N)"; }
fail() { say "FAILED: $*"; exit 1; }

# step NAME COMMAND...: run it, print its output and how long it took; stop the script if it fails
step() {
    local name=$1; shift
    local t=$(date +%s.%N)
    say ""
    say "### $name"
    say '```'
    say "\$ $*"
    if "$@"; then
        say '```'
        say "($name: $(elapsed "$t") s)"
    else
        local rc=$?
        say '```'
        fail "$name (exit $rc after $(elapsed "$t") s)"
    fi
}

inns() { ip netns exec "$NS" "$@"; }  # inside the namespace
# As root inside the namespace, with the repository's Ray. Its temp folder is the head's too: the
# local provider keeps its cluster state in a file `ray up` copies to the same path on the head, so
# both sides must agree on it (they do on real machines, /tmp/ray); umask 0 lets the head's account
# write the files root made there.
RAY_TMP=$WORK/ray
ray_cli() { (umask 000; inns env RAY_TMPDIR="$RAY_TMP" RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 "$RAY" "$@"); }
# a command on the head over plain SSH, in its login environment, killed there after 60 s
on_head() {
    inns ssh -q -i "$WORK/id_cluster" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        "$NODE_USER@127.0.0.1" "bash -lic 'timeout 60 $*'" 2>/dev/null
}

cleanup() {
    local rc=$?
    set +e
    say ""
    say "### cleanup"
    if [ "$CLUSTER_UP" = 1 ]; then
        ray_cli down -y "$WORK/cluster.yaml" > "$WORK/down.log" 2>&1
        say "ray down: exit $?"
    fi
    # whatever the node account still runs was started through this script's sshd: stop it by PID
    if [ "$MADE_USER" = 1 ]; then
        local left
        left=$(pgrep -u "$NODE_USER" || true)
        if [ -n "$left" ]; then
            say "processes of $NODE_USER still running, stopped by PID:"
            ps -o pid=,args= -p "$(echo $left | tr ' ' ,)" | cut -c1-200
            kill $left 2>/dev/null; sleep 2; kill -9 $(pgrep -u "$NODE_USER") 2>/dev/null
        fi
    fi
    # sshd: the listener found at start, and any other sshd reading this run's config
    for pid in $SSHD_PID $(pgrep -f "sshd -D -e -f $WORK/sshd_config" || true); do
        kill "$pid" 2>/dev/null && say "sshd (PID $pid) stopped"
        while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    done
    [ "$MADE_NS" = 1 ] && ip netns del "$NS" && say "namespace $NS removed"
    [ "$MADE_USER" = 1 ] && userdel -r "$NODE_USER" 2>/dev/null && say "account $NODE_USER removed"
    [ "$rc" = 0 ] || say "(files kept in $WORK)"
    say "total: $(elapsed "$T0") s, exit $rc"
}

write_cluster_file() {  # the copy `ray up` reads: addresses, key and workers changed, nothing else
    "$PY" - "$REPO/cluster-onprem.yaml" "$WORK/cluster.yaml" "$WORK/id_cluster" "$WORKER" <<'EOF'
import copy, sys, yaml
from ray.autoscaler._private.util import prepare_config, validate_config
src, dst, key, worker = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
config = yaml.safe_load(open(src))
config["provider"]["head_ip"] = "127.0.0.1"
config["provider"]["worker_ips"] = ["127.0.0.2"] if worker else []
config["min_workers"] = config["max_workers"] = 1 if worker else 0
config["auth"]["ssh_private_key"] = key
validate_config(prepare_config(copy.deepcopy(config)))  # what `ray up` checks first
yaml.safe_dump(config, open(dst, "w"), sort_keys=False)
changed = {k for k in config if config[k] != yaml.safe_load(open(src)).get(k)}
print(f"{dst}: valid; differs from {src} in {sorted(changed)}")
EOF
}

make_namespace() {
    ip netns add "$NS" && MADE_NS=1 && inns ip link set lo up
    inns ip -brief addr
}

make_account() {
    id "$NODE_USER" >/dev/null 2>&1 && { echo "account $NODE_USER exists already: refusing to touch it"; return 1; }
    useradd -m -s /bin/bash "$NODE_USER" && MADE_USER=1
    usermod -p '*' "$NODE_USER"  # no password, but not locked: sshd without PAM refuses locked accounts
    local home=/home/$NODE_USER
    install -d -m 700 -o "$NODE_USER" "$home/.ssh" "$home/.config/pip"
    install -m 600 -o "$NODE_USER" "$WORK/id_cluster.pub" "$home/.ssh/authorized_keys"
    # the node's package index: the wheelhouse only (the namespace has no network)
    printf '[global]\nno-index = true\nfind-links = %s\n' "$WORK/wheels" > "$home/.config/pip/pip.conf"
    chown "$NODE_USER" "$home/.config/pip/pip.conf"
    # Ray's temp folder: not /tmp/ray, which another user's Ray on this machine may own (ray_cli)
    install -d -m 1777 "$RAY_TMP"
    echo "export RAY_TMPDIR=$RAY_TMP RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0" >> "$home/.bashrc"
    # the real PTB-XL subset the job searches, put where head_setup_commands looks for the dataset
    install -d -o "$NODE_USER" "$home/ptb-xl"
    tar xJf "$REPO/tests/fixtures/ptbxl-1.0.1-first400.tar.xz" -C "$home/ptb-xl"
    chown -R "$NODE_USER" "$home/ptb-xl"
    echo "account $NODE_USER: key, pip index $WORK/wheels, $(ls "$home/ptb-xl/records100"/*/*.hea | wc -l) PTB-XL records in ~/ptb-xl"
}

start_sshd() {
    mkdir -p /run/sshd
    ssh-keygen -q -t ed25519 -N "" -f "$WORK/ssh_host_key"
    local listen="ListenAddress 127.0.0.1"
    [ "$WORKER" = 1 ] && listen="$listen"$'\n'"ListenAddress 127.0.0.2"
    cat > "$WORK/sshd_config" <<EOF
Port 22
$listen
HostKey $WORK/ssh_host_key
AllowUsers $NODE_USER
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
MaxStartups 50:30:100
MaxSessions 50
EOF
    inns /usr/sbin/sshd -D -e -f "$WORK/sshd_config" > "$WORK/sshd.log" 2>&1 &
    local launcher=$!
    for _ in $(seq 50); do
        inns ssh -q -i "$WORK/id_cluster" -o BatchMode=yes -o StrictHostKeyChecking=no \
            -o UserKnownHostsFile=/dev/null "$NODE_USER@127.0.0.1" true 2>/dev/null && break
        kill -0 "$launcher" 2>/dev/null || { cat "$WORK/sshd.log"; return 1; }
        sleep 0.2
    done
    # sshd's own PID (the listener's), not the launcher's: `ip netns exec` may fork
    SSHD_PID=$(inns ss -ltnpH 'sport = :22' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
    [ -n "$SSHD_PID" ] || { cat "$WORK/sshd.log"; echo "sshd is not listening"; return 1; }
    inns ssh -q -i "$WORK/id_cluster" -o BatchMode=yes -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null "$NODE_USER@127.0.0.1" true || { tail -5 "$WORK/sshd.log"; return 1; }
    echo "sshd PID $SSHD_PID, listening in $NS:"
    inns ss -ltnp | grep sshd
}

submit_job() {
    # the job runs on the head as the node account: ~ there is its home (quoted here, so that this
    # shell does not turn it into root's); --working-dir uploads this checkout (git-ignored files left out)
    ray_cli job submit --address http://127.0.0.1:8265 --no-wait --working-dir "$REPO" --submission-id "$JOB" -- \
        python -m raysearch --data '~/ptb-xl' --leads 2,4 --trials 2 --teacher-trials 1 \
        --space search_spaces/tiny.yaml --storage '~/runs' --name onprem
}

check_summary() {
    ray_cli rsync-down "$WORK/cluster.yaml" '~/runs/onprem/summary.json' "$WORK/summary.json" >/dev/null
    "$PY" - "$WORK/summary.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
for lead, arms in s["leads"].items():
    for arm, r in arms.items():
        assert r["trials"] == 2 and r["errored"] == 0, (lead, arm, r)
        print(f"{lead} leads {arm}: {r['trials']} trials ({r['finished']} finished, {r['stopped_early']} stopped early), "
              f"val macro-AUC {r['val_macro_auc']:.4f}, test {r['test_macro_auc']:.4f}")
assert set(s["leads"]) == {"2", "4"} and not s["synthetic"], s["leads"].keys()
print(f"summary.json at {s['run_dir']}: {s['records']} real records, every arm finished")
EOF
}

listening() {  # what listens, and where: the namespace's sockets only
    inns ss -ltnp | awk 'NR > 1 {print $4}' | sort -u | tr '\n' ' '; echo
    if inns ss -ltn | awk 'NR > 1 {print $4}' | grep -vqE '^(127\.|\[::1\]|\[::ffff:127\.)|^(\*|0\.0\.0\.0|\[::\]):'; then
        echo "a socket on an address that is not loopback"; return 1
    fi
    echo "the namespace has only its loopback interface: every socket above (wildcards included) is reachable from 127.0.0.0/8 alone"
}

say "# ray up cluster-onprem.yaml over SSH on the loopback interface"
say ""
say "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -sr), $(nproc) cores; Ray $("$PY" -c 'import ray; print(ray.__version__)'), $("$PY" --version)"
say "work folder $WORK; below, inns = \`ip netns exec $NS\`, ray_cli = inns + this checkout's \`ray\` (RAY_TMPDIR=$RAY_TMP)"
ssh-keygen -q -t ed25519 -N "" -C raysearch-cluster -f "$WORK/id_cluster"
step "the cluster file ray up reads" write_cluster_file
if [ "$DRY" = 1 ]; then
    say "--dry-run: nothing started"
    rm -rf "$WORK"
    exit 0
fi
[ "$(id -u)" = 0 ] || fail "run as root: it makes an account, a network namespace and an SSH server"
trap cleanup EXIT
trap 'exit 130' INT TERM  # the EXIT trap cleans up on Ctrl-C and kill too
JOB=onprem-1  # a fresh cluster each run: the id is free

missing=()
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v rsync >/dev/null || missing+=(rsync)
[ ${#missing[@]} = 0 ] || step "install ${missing[*]}" apt-get install -y -q "${missing[@]}"
wheelhouse() {
    "$PY" -m pip download -q -d "$WORK/wheels" "torch==2.13.0" "setuptools>=68" "$REPO[cluster]" 2>&1 |
        grep -v "is ignored: it is neither a file nor a directory" || true
    echo "$(ls "$WORK/wheels" | wc -l) wheels, $(du -sh "$WORK/wheels" | cut -f1)"
    ls "$WORK/wheels" | grep -E '^(torch|ray|raysearch)-'
}
step "wheelhouse (raysearch[cluster] and torch for the node)" wheelhouse
step "network namespace with only a loopback interface" make_namespace
step "node account" make_account
step "sshd on 127.0.0.1 inside the namespace" start_sshd
CLUSTER_UP=1
step "ray up" ray_cli up -y "$WORK/cluster.yaml" --no-config-cache
step "the head's Ray" ray_cli exec "$WORK/cluster.yaml" "ray status"
if [ "$WORKER" = 1 ]; then
    wait_worker() {  # the head's autoscaler starts the worker over SSH after `ray up` returns
        printf '%s\n' 'import ray' 'ray.init(address="auto", logging_level=40)' \
            'print("alive nodes:", sum(n["Alive"] for n in ray.nodes()))' > "$WORK/nodes.py"
        chmod 644 "$WORK/nodes.py"
        for _ in $(seq 40); do
            on_head "python $WORK/nodes.py" | grep "alive nodes" | tail -1 | tee "$WORK/nodes.txt"
            grep -q "alive nodes: 2" "$WORK/nodes.txt" && return 0
            sleep 10
        done
        on_head "tail -n 40 $RAY_TMP/ray/session_latest/logs/monitor.log"
        return 1
    }
    step "the worker on 127.0.0.2" wait_worker
fi
step "what listens" listening
step "ray job submit" submit_job
step "ray job logs --follow" ray_cli job logs --address http://127.0.0.1:8265 --follow "$JOB"
step "ray job status" ray_cli job status --address http://127.0.0.1:8265 "$JOB"
ray_cli job status --address http://127.0.0.1:8265 "$JOB" 2>&1 | grep -q "succeeded" || fail "the job did not succeed"
step "the job's summary" check_summary
step "ray down" ray_cli down -y "$WORK/cluster.yaml"
CLUSTER_UP=0
