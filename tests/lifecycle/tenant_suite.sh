#!/usr/bin/env bash
# Issue 21's lifecycle suite: instances handed to tenants. Rootless instances
# (Rootless=yes: rootlesskit, slirp4netns, dockerd and its containerd as the instance's
# user in a user namespace) beside a rootful one and the host's own docker.service and
# containerd.service, in the booted host of lib.sh, installed as suite.sh installs (the
# .deb of this checkout with apt-get, Docker and its rootless extras through
# `dockyard install` from the fixture mirror; README.md here).
#
#   sudo bash tests/lifecycle/tenant_suite.sh      (or: sudo make lifecycle-tenant)
#
# Instances: ta (rootless, Autostart=yes) handed to the unprivileged user `tenant`, whose
# only right beyond a plain user's is the group ta_docker; tb (rootless, another
# tenant's); rf (rootful). Every negative check first proves that the same request works
# where it is allowed, so a broken setup cannot pass for a refusal:
#   - as tenant through ta (with `dockyard env ta`): containers, a user-defined network,
#     DNS and the upstream TCP service from both, a published port from upstream;
#   - as tenant through ta, refused: a root-only host file (-v /root), writing
#     /etc/passwd (-v /etc), tb's data root, the host Docker's socket, --privileged
#     --pid=host into PID 1's root, /proc/sysrq-trigger and init_module from a privileged
#     container, connections to unpublished ports of rf's and tb's containers (from a
#     container and from --network host) unless rf's AllowFrom= names ta, to a host service
#     on 127.0.0.1 and to one on the host's own address; tb's socket; ta's socket for a
#     user outside ta_docker;
#   - rf's group is root on the host (a member reads /root/secret), as the docs say;
#   - ta's lifecycle: restart; kill -9 of rootlesskit, dockerd and slirp4netns (the unit
#     comes back by Restart=, nothing of the old run is left); kill -9 of containerd
#     (dockerd starts another, its containers and exec work on); a reboot; and
#     `dockyard destroy` leaving nothing of it while the host's Docker runs on.
# Env: LC_FIREWALL=iptables|nftables (default iptables), LC_SUITE=bookworm|sid;
# LC_VERBOSE=1 prints every test's output; LC_KEEP_WORK=1 keeps the working copy;
# LC_DEB=FILE installs that .deb instead of building one.
# shellcheck disable=SC2317  # the predicates handed to lc__wait_for are called indirectly
set -euo pipefail
SUITE_T0=$(date +%s.%N)
HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"
# shellcheck source-path=SCRIPTDIR source=instance_lib.sh
source "$HERE/instance_lib.sh"

# Networks inside 172.16.0.0/12, none overlapping, clear of the host Docker's docker0
# (172.17.0.0/16) and of slirp4netns' 10.0.2.0/24 inside a rootless instance.
declare -A BRIDGE=([ta]=172.20.31.1/24 [tb]=172.20.32.1/24 [rf]=172.20.33.1/24)
declare -A POOL=([ta]=172.24.0.0/16 [tb]=172.25.0.0/16 [rf]=172.26.0.0/16)
HOST_SOCK=/run/docker.sock
TENANT=tenant          # ta's tenant: a plain user in group ta_docker
OUTSIDER=outsider      # a plain user in no instance's group
RF_MEMBER=rfuser       # a member of rf's group (rootful)
SECRET=dockyard-root-secret-5e21
PUBLIC=dockyard-public-ok
PUBLISHED_PORT=8080
LOOPBACK_PORT=9099     # a host service on 127.0.0.1 only
HOSTADDR_PORT=9098     # a host service on every address of the host
# slirp4netns' address for the host's loopback (refused: --disable-host-loopback).
SLIRP_HOST=10.0.2.2

# --- helpers -------------------------------------------------------------------------
# hd ARGS...: the docker CLI against the host's own Docker (docker.service), bounded.
hd() { lc_exec timeout 120 env DOCKER_HOST="unix://$HOST_SOCK" "$LC_DOCKER_BIN/docker" "$@"; }
# as_user USER CMD...: CMD as USER in the booted host (runuser: USER's groups from
# /etc/group, its HOME), bounded.
as_user() { local u=$1; shift; lc_exec timeout 120 runuser -u "$u" -- env HOME="/home/$u" "$@"; }
# td ARGS...: docker as the tenant through ta, with the socket and the CLI `dockyard env
# ta` points the tenant's shell at.
td() {
    # shellcheck disable=SC2016  # expanded by the tenant's sh
    as_user "$TENANT" sh -c 'eval "$(dockyard env ta)" && exec docker "$@"' sh "$@"
}
# udk USER NAME ARGS...: the bundled docker CLI as USER against instance NAME's socket.
udk() { local u=$1 n=$2; shift 2; as_user "$u" env DOCKER_HOST="unix://$(sock "$n")" "$LC_DOCKER_BIN/docker" "$@"; }
# trun ARGS...: a throw-away container of the tenant's on ta (ARGS: run options, then the
# image's command); the image is put in front of the command by the caller.
trun() { td run --rm "$@"; }
uid_of() { lc_exec id -u "$1"; }
cip_t() { td inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$1"; }
cip() { dk "$1" inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$2"; }
is_ip() { [[ $1 =~ ^[0-9]+(\.[0-9]+){3}$ ]]; }
# host_get IP:PORT: an HTTP GET from the booted host itself (bash, no client needed).
host_get() {
    # shellcheck disable=SC2016  # expanded by the inner bash
    lc_exec timeout 3 bash -c 'exec 3<>"/dev/tcp/${1%:*}/${1##*:}" && printf "GET / HTTP/1.0\r\n\r\n" >&3 && cat <&3' _ "$1"
}
host_gets() { host_get "$1" 2>/dev/null | grep -qxF "$2"; }
# (busybox 1.35's wget -T crashes with SIGSEGV, here and in the image: timeout bounds it.)
upstream_get() { ip netns exec "$LC_NETNS" timeout 3 busybox wget -q -O - "http://$1/" 2>&1; }
# A busybox httpd answering TEXT on BIND (a port, or addr:port).
httpd_script() { echo "mkdir -p /www && echo '$1' >/www/index.html && exec httpd -f -p $2 -h /www"; }

# tprobe OPTS -- IP:PORT...: one container of the tenant's on ta, run with the docker run
# options OPTS (a network), tries every target at once, each a wget bounded to 3 s; one line
# per target: "IP:PORT ok REPLY" or "IP:PORT blocked (error)".
tprobe() {
    local -a opts=()
    while [[ $1 != -- ]]; do opts+=("$1"); shift; done
    shift
    # shellcheck disable=SC2016  # expanded by the container's sh
    trun "${opts[@]}" "$LC_IMAGE" sh -c 'for t in "$@"; do
        ( if r=$(timeout 3 wget -q -O - "http://$t/" 2>&1); then echo "$t ok $r"; else echo "$t blocked ($r)"; fi ) &
    done; wait' sh "$@" 2>&1 | grep -v '^Terminated$'
}
# probe_check LABEL OPTS -- ADDR=WANT...: tprobe, then every target as wanted: WANT is
# "reach:TEXT" (exactly that reply) or "block" (no reply). All failures in one message.
probe_check() {
    local label=$1 spec addr want line out; shift
    local -a opts=() addrs=() specs=() bad=()
    while [[ $1 != -- ]]; do opts+=("$1"); shift; done
    shift
    for spec in "$@"; do addrs+=("${spec%%=*}"); specs+=("$spec"); done
    out=$(tprobe "${opts[@]}" -- "${addrs[@]}") || lc_fail "$label: the probe container failed: $out"
    echo "$label:"
    echo "$out"
    for spec in "${specs[@]}"; do
        addr=${spec%%=*} want=${spec#*=}
        line=$(awk -v a="$addr" '$1 == a' <<<"$out")
        case $want in
            reach:*) [[ $line == "$addr ok ${want#reach:}" ]] || bad+=("$label did not get '${want#reach:}' from $addr (${line:-no line})") ;;
            block) [[ $line == "$addr blocked"* ]] || bad+=("$label reached $addr (${line:-no line})") ;;
            *) lc_fail "probe_check: bad spec $spec" ;;
        esac
    done
    ((${#bad[@]} == 0)) || lc_fail "$(printf '%s; ' "${bad[@]}")"
}

# upstream_ok LABEL CMD...: CMD greets the upstream TCP service; upstream logged one new
# peer, the host's 192.0.2.2 (slirp4netns connects from the host).
upstream_ok() {
    local label=$1 before after out peer; shift
    before=$(lc_upstream_peers | wc -l)
    out=$("$@" 2>&1) || lc_fail "$label: could not reach $LC_UP_ADDR:$LC_UPSTREAM_PORT: $out"
    echo "$label: $out"
    grep -q 'hello from upstream' <<<"$out" || lc_fail "$label: no greeting from upstream: $out"
    after=$(lc_upstream_peers | wc -l)
    ((after == before + 1)) || lc_fail "$label: expected 1 new upstream connection, got $((after - before))"
    peer=$(lc_upstream_peers | tail -n 1 | awk '{print $2}')
    [[ $peer == "$LC_CT_ADDR" ]] || lc_fail "$label: upstream saw $peer, not the host's $LC_CT_ADDR"
}
# dns_ok LABEL CMD...: CMD (an nslookup of upstream.test) answers 192.0.2.1.
dns_ok() {
    local label=$1 out; shift
    out=$("$@" 2>&1) || lc_fail "$label: nslookup $LC_UPSTREAM_NAME failed: $out"
    echo "$label: $(tr '\n' ' ' <<<"$out")"
    grep -qE "Address( 1)?:? +$LC_UP_ADDR\b" <<<"$out" || lc_fail "$label: no $LC_UP_ADDR in the answer: $out"
}

# Processes of instance NAME's user and of its subordinate ids: "uid pid start comm"
# lines (start: boot-relative clock ticks), so a process of an earlier run is told apart
# from a new one with a reused PID.
user_procs() {
    local uid=$1 first=${2:-0} count=${3:-0}
    # shellcheck disable=SC2016  # expanded by the inner sh
    lc_exec sh -c 'for s in /proc/[0-9]*/stat; do
        p=${s#/proc/}; p=${p%/stat}
        u=$(awk "/^Uid:/ {print \$2}" /proc/$p/status 2>/dev/null) || continue
        [ -n "$u" ] || continue
        if [ "$u" = "$1" ] || { [ "$3" -gt 0 ] && [ "$u" -ge "$2" ] && [ "$u" -lt $(($2 + $3)) ]; }; then
            st=$(cut -d" " -f22 "$s" 2>/dev/null) || continue
            echo "$u $p $st $(cat /proc/$p/comm 2>/dev/null)"
        fi
    done' sh "$uid" "$first" "$count"
}
# subid_range USER: "first count" of USER's line in /etc/subuid, or nothing.
# shellcheck disable=SC2016  # expanded by the inner shell or awk
subid_range() { lc_exec awk -F: -v u="$1" '$1 == u {print $2, $3}' /etc/subuid; }
# ta_procs: user_procs for ta_docker and its subordinate ids.
ta_procs() {
    local r
    r=$(subid_range ta_docker)
    # shellcheck disable=SC2086  # "first count"
    user_procs "$(uid_of ta_docker)" ${r:-0 0}
}
# still_there BEFORE: the lines of BEFORE (user_procs) whose process still runs.
still_there() {
    local u p st c now
    while read -r u p st c; do
        [[ -n ${p:-} ]] || continue
        now=$(lc_exec cut -d' ' -f22 "/proc/$p/stat" 2>/dev/null) || continue
        [[ $now == "$st" ]] && echo "$u $p $c"
    done <<<"$1"
    return 0
}
nrestarts() { lc_exec systemctl show -p NRestarts --value "$1"; }
# ta_answers: the tenant's docker answers through ta's socket.
ta_answers() { [[ -n $(td version -f '{{.Server.Version}}' 2>/dev/null) ]]; }
# ta_proc COMM: the one process COMM of ta's user.
ta_proc() {
    local p
    p=$(lc_exec pgrep -u ta_docker -x "$1" || true)
    [[ $p =~ ^[0-9]+$ ]] || { lc_fail "not exactly one $1 of ta_docker: '$(tr '\n' ' ' <<<"$p")'; processes: $(ta_procs | tr '\n' ';')"; return 1; }
    echo "$p"
}

# rf_privileged FALLBACK -- ARGS...: a member of rf's group runs `docker run --rm
# --privileged ARGS...` on rf. Where the machine's capability bounding set lacks a
# capability (this CI machine's has no CAP_SYS_RESOURCE), runc cannot give a privileged
# container all of them ("unable to apply caps"), so the request is made again with the
# options FALLBACK instead of --privileged, the narrower grant it needs, and says so.
rf_privileged() {
    local -a fallback=()
    local out
    while [[ $1 != -- ]]; do fallback+=("$1"); shift; done
    shift
    if out=$(udk "$RF_MEMBER" rf run --rm --privileged "$@" 2>&1); then echo "$out"; return 0; fi
    grep -q 'unable to apply caps' <<<"$out" || { echo "$out"; return 1; }
    echo "rf: --privileged cannot start here ($(tail -n 1 <<<"$out")); ${fallback[*]} instead" >&2
    udk "$RF_MEMBER" rf run --rm "${fallback[@]}" "$@" 2>&1
}

# --- tests -----------------------------------------------------------------------------
t01_instances() {
    local n pids=() rc=0 out uid c u
    lc_exec stat -c '%a %U' /dev/net/tun | grep -qx '666 root' ||
        lc_fail "/dev/net/tun is not 0666 in the booted host: $(lc_exec ls -l /dev/net/tun 2>&1)"
    # The host's own Docker first, as at boot on a host that runs both (the rootfs masks
    # it), with a long-lived container.
    for u in docker.service docker.socket containerd.service; do
        lc_exec sh -c "[ \"\$(readlink /etc/systemd/system/$u)\" != /dev/null ] || rm -f /etc/systemd/system/$u"
    done
    lc_exec systemctl daemon-reload
    lc_exec timeout 120 systemctl start containerd.service docker.service ||
        lc_fail "the host's Docker does not start: $(unit_state docker.service)"
    lc_image "$HOST_SOCK"
    # A host Docker sets FORWARD to DROP; every test runs under it.
    lc_exec iptables -P FORWARD DROP
    hd rm -f hostc >/dev/null 2>&1 || true
    hd run -d --init --name hostc "$LC_IMAGE" sleep 100000 >/dev/null
    write_conf ta 'Rootless=yes' 'Autostart=yes'
    write_conf tb 'Rootless=yes'
    write_conf rf 'Runtime=runc'
    lc_exec systemctl daemon-reload
    for n in ta tb rf; do
        lc_exec timeout 180 systemctl start "${n}_docker.service" &
        pids+=($!)
    done
    for n in "${pids[@]}"; do wait "$n" || rc=1; done
    for n in ta tb rf; do
        active "${n}_docker.service" || lc_fail "${n}_docker.service is not active: $(unit_state "${n}_docker.service")"
    done
    ((rc == 0)) || lc_fail "a systemctl start failed although the units are active"
    for n in ta tb rf; do lc_image "$(sock "$n")"; done
    for n in ta tb; do
        uid=$(uid_of "${n}_docker")
        ((uid != 0)) || lc_fail "${n}_docker has uid 0"
        # dockerd, its containerd, rootlesskit and slirp4netns run as the instance's user.
        for c in rootlesskit slirp4netns dockerd containerd; do
            out=$(lc_exec pgrep -u "${n}_docker" -x "$c" || true)
            [[ -n $out ]] || lc_fail "$n: no $c running as ${n}_docker: $(lc_exec ps -eo user,pid,comm | grep -v ' \[' | tail -n 30)"
        done
        out=$(lc_exec stat -c '%U:%G %a' "$(sock "$n")")
        [[ $out == "${n}_docker:${n}_docker 660" ]] || lc_fail "$n's socket is '$out', not ${n}_docker:${n}_docker 660"
        out=$(lc_exec grep "^${n}_docker:" /etc/subuid /etc/subgid || true)
        echo "$out"
        [[ $(grep -c ":65536\$" <<<"$out") == 2 ]] || lc_fail "$n: not one range of 65536 ids in each of /etc/subuid and /etc/subgid: $out"
        if link_exists "${n}_docker0"; then lc_fail "rootless $n has a bridge on the host: $(lc_exec ip -o addr show "${n}_docker0")"; fi
    done
    # Only the rootful rf's and the host Docker's daemons run as root.
    out=$(lc_exec ps -eo user=,args= | awk '$1 == "root" && $2 ~ /(dockerd|containerd|rootlesskit)$/' | grep -E 'ta_docker|tb_docker|/ta/|/tb/' || true)
    [[ -z $out ]] || lc_fail "daemons of a rootless instance run as root: $out"
    # Users: the tenant (ta_docker's member), one in no group, a member of rf's group.
    lc_exec useradd -m -s /bin/sh "$TENANT"
    lc_exec usermod -aG ta_docker "$TENANT"
    lc_exec useradd -m -s /bin/sh "$OUTSIDER"
    lc_exec useradd -m -s /bin/sh "$RF_MEMBER"
    lc_exec usermod -aG rf_docker "$RF_MEMBER"
    lc_exec id "$TENANT" "$OUTSIDER" "$RF_MEMBER"
    # Host files: a root-only secret, and a file anyone may read.
    # shellcheck disable=SC2016  # expanded by the inner shell or awk
    lc_exec sh -c 'umask 077 && echo "$1" >/root/secret' sh "$SECRET"
    # shellcheck disable=SC2016  # expanded by the inner shell
    lc_exec sh -c 'mkdir -p /srv/pub && echo "$1" >/srv/pub/readme && chmod 0755 /srv/pub && chmod 0644 /srv/pub/readme' sh "$PUBLIC"
    [[ $(lc_exec stat -c %a /root) == 700 ]] || lc_fail "/root is not 0700 in the booted host: $(lc_exec stat -c %a /root)"
    # Two host services: on 127.0.0.1 only, and on every address (the host Docker's
    # containers in the host's network namespace).
    hd rm -f svc-lo svc-any >/dev/null 2>&1 || true
    hd run -d --init --name svc-lo --network host "$LC_IMAGE" sh -c "$(httpd_script 'host loopback' "127.0.0.1:$LOOPBACK_PORT")" >/dev/null
    hd run -d --init --name svc-any --network host "$LC_IMAGE" sh -c "$(httpd_script 'host any' "$HOSTADDR_PORT")" >/dev/null
    lc__wait_for 10 host_gets "127.0.0.1:$LOOPBACK_PORT" 'host loopback' || lc_fail "the loopback service does not answer root on the host"
    lc__wait_for 10 host_gets "$LC_CT_ADDR:$HOSTADDR_PORT" 'host any' || lc_fail "the host-address service does not answer root on the host"
}

t02_tenant_uses_ta() {
    local out uid pid ids
    out=$(as_user "$TENANT" dockyard env ta) || lc_fail "dockyard env ta fails for the tenant: $out"
    echo "$out"
    grep -qF "unix://$(sock ta)" <<<"$out" || lc_fail "dockyard env ta does not point at $(sock ta): $out"
    out=$(td info -f '{{.SecurityOptions}}') || lc_fail "docker info as the tenant fails: $out"
    echo "security options: $out"
    grep -q 'name=rootless' <<<"$out" || lc_fail "ta's dockerd does not say it is rootless: $out"
    # A container: root inside, the instance's user outside.
    out=$(trun "$LC_IMAGE" id -u) || lc_fail "docker run as the tenant fails: $out"
    [[ $out == 0 ]] || lc_fail "id -u in the tenant's container is '$out'"
    td rm -f t-sleep >/dev/null 2>&1 || true
    td run -d --init --name t-sleep "$LC_IMAGE" sleep 100000 >/dev/null
    pid=$(td inspect -f '{{.State.Pid}}' t-sleep)
    uid=$(uid_of ta_docker)
    # shellcheck disable=SC2016  # expanded by the inner shell or awk
    ids=$(lc_exec awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$pid/status")
    [[ $ids == "$uid $uid $uid $uid" ]] || lc_fail "the tenant's container (pid $pid) runs as uids '$ids', not ta_docker's $uid"
    td rm -f t-sleep >/dev/null
    # A user-defined network, from ta's pool.
    td network rm tnet >/dev/null 2>&1 || true
    td network create tnet >/dev/null
    out=$(td network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' tnet)
    [[ $out == "${POOL[ta]%.0.0/16}."* ]] || lc_fail "tnet got $out, not from ta's pool ${POOL[ta]}"
    # DNS and the upstream TCP service, from the default bridge and from tnet.
    dns_ok "default bridge" trun "$LC_IMAGE" nslookup "$LC_UPSTREAM_NAME"
    dns_ok "tnet" trun --network tnet "$LC_IMAGE" nslookup "$LC_UPSTREAM_NAME"
    upstream_ok "default bridge" trun "$LC_IMAGE" nc -w 5 "$LC_UP_ADDR" "$LC_UPSTREAM_PORT"
    upstream_ok "tnet" trun --network tnet "$LC_IMAGE" nc -w 5 "$LC_UP_ADDR" "$LC_UPSTREAM_PORT"
    # A published port answers from upstream on the host's address.
    td rm -f t-pub >/dev/null 2>&1 || true
    td run -d --init --name t-pub -p "$PUBLISHED_PORT:80" "$LC_IMAGE" sh -c "$(httpd_script 'listener ta published' 80)" >/dev/null
    pub_ok() { [[ $(upstream_get "$LC_CT_ADDR:$PUBLISHED_PORT") == "listener ta published" ]]; }
    lc__wait_for 15 pub_ok || lc_fail "upstream does not reach ta's published port $LC_CT_ADDR:$PUBLISHED_PORT: $(upstream_get "$LC_CT_ADDR:$PUBLISHED_PORT"); ss: $(lc_exec ss -Htlnp | grep ":$PUBLISHED_PORT " || true)"
    echo "upstream -> $LC_CT_ADDR:$PUBLISHED_PORT: $(upstream_get "$LC_CT_ADDR:$PUBLISHED_PORT")"
    td rm -f t-pub >/dev/null
}

t02b_status_mode() {
    local json out problems=()
    # Everything is looked at; every difference is reported together.
    json=$(dy status --json 2>&1) || (($? == 3)) || lc_fail "dockyard status --json failed: $json"
    echo "$json"
    out=$(python3 -c '
import json, sys
s = {x["name"]: x for x in json.loads(sys.argv[1])}
for n, want in (("ta", "rootless"), ("rf", "rootful")):
    if n not in s:
        print("%s is not in it" % n)
        continue
    if s[n].get("mode") != want:
        print("%s: mode %r, not %r" % (n, s[n].get("mode"), want))
    if not s[n]["socket"]["ok"]:
        print("%s: socket %s:%s %s is not ok" % (n, s[n]["socket"]["owner"], s[n]["socket"]["group"], s[n]["socket"]["mode"]))
' "$json") || out="cannot read dockyard status --json: $json"
    [[ -z $out ]] || problems+=("dockyard status: $(tr '\n' ';' <<<"$out")")
    out=$(dy verify ta 2>&1) || problems+=("dockyard verify ta fails: $(grep -iE 'fail|error' <<<"$out" | tr '\n' ';')")
    ((${#problems[@]} == 0)) || lc_fail "$(printf '%s; ' "${problems[@]}")"
}

t03_sockets() {
    local out
    # The same request, the same CLI: the tenant through ta's socket answers.
    out=$(udk "$TENANT" ta version -f '{{.Server.Version}}' 2>&1) || lc_fail "the tenant cannot use ta's socket: $out"
    echo "tenant -> ta: $out"
    out=$(dk tb version -f '{{.Server.Version}}' 2>&1) || lc_fail "tb's socket does not answer root: $out"
    echo "root -> tb: $out"
    if out=$(udk "$TENANT" tb version -f '{{.Server.Version}}' 2>&1); then
        lc_fail "the tenant of ta talks to tb's dockerd: $out"
    fi
    echo "tenant -> tb: $out"
    grep -qi 'permission denied' <<<"$out" || lc_fail "the tenant's request to tb failed, but not for permission: $out"
    if out=$(udk "$OUTSIDER" ta version -f '{{.Server.Version}}' 2>&1); then
        lc_fail "a user outside ta_docker talks to ta's dockerd: $out"
    fi
    echo "outsider -> ta: $out"
    grep -qi 'permission denied' <<<"$out" || lc_fail "the outsider's request to ta failed, but not for permission: $out"
}

t04_host_files() {
    local out sum0 sum1
    # Read: a file the instance's user may read, then root's.
    out=$(trun -v /srv/pub:/h:ro "$LC_IMAGE" cat /h/readme 2>&1) || lc_fail "the tenant cannot read a world-readable host file through -v: $out"
    [[ $out == "$PUBLIC" ]] || lc_fail "cat of /srv/pub/readme through -v gave '$out'"
    if out=$(trun -v /root:/h "$LC_IMAGE" cat /h/secret 2>&1); then lc_fail "the tenant read /root/secret through -v /root: $out"; fi
    echo "-v /root:/h cat /h/secret: $out"
    if grep -qF "$SECRET" <<<"$out"; then lc_fail "root's secret leaked: $out"; fi
    # Write: into a volume, then into the host's /etc.
    out=$(trun -v tvol:/h "$LC_IMAGE" sh -c 'echo written >/h/f && cat /h/f' 2>&1) || lc_fail "the tenant cannot write into a volume: $out"
    [[ $out == written ]] || lc_fail "the volume gave back '$out'"
    sum0=$(lc_exec sha256sum /etc/passwd)
    if out=$(trun -v /etc:/h "$LC_IMAGE" sh -c 'echo "evil:x:0:0::/:/bin/sh" >>/h/passwd' 2>&1); then
        lc_fail "the tenant appended to the host's /etc/passwd: $out"
    fi
    echo "-v /etc:/h, append to /h/passwd: $out"
    sum1=$(lc_exec sha256sum /etc/passwd)
    [[ $sum0 == "$sum1" ]] || lc_fail "the host's /etc/passwd changed: $(lc_exec tail -n 2 /etc/passwd)"
    # An instance's data root: ta's own is the tenant's; tb's is not.
    out=$(trun -v /var/lib/dockyard/ta:/h "$LC_IMAGE" ls /h/docker 2>&1) || lc_fail "the tenant cannot list ta's data root through -v: $out"
    grep -qx containers <<<"$out" || lc_fail "ta's data root through -v lists no containers/: $out"
    if out=$(trun -v /var/lib/dockyard/tb:/h "$LC_IMAGE" ls /h/docker 2>&1); then lc_fail "the tenant lists tb's data root: $out"; fi
    echo "-v /var/lib/dockyard/tb:/h ls /h/docker: $out"
    if out=$(trun -v /var/lib/dockyard/tb:/h "$LC_IMAGE" touch /h/planted 2>&1); then lc_fail "the tenant wrote into tb's root: $out"; fi
    if lc_exec test -e /var/lib/dockyard/tb/planted; then lc_fail "/var/lib/dockyard/tb/planted exists"; fi
}

# A Docker client inside a busybox container: the booted host's own docker CLI, run by
# its dynamic loader from the host's /usr, mounted read-only at /hostusr (the image has
# no libc; mounted at /usr it would shadow the image's own commands).
t05_docker_sockets() {
    local ldso libdir out cmd
    # shellcheck disable=SC2016  # expanded by the inner shell or awk
    ldso=$(lc_exec sh -c 'for f in /usr/lib64/ld-linux-*.so.* /usr/lib/ld-linux-*.so.* /usr/lib/*/ld-linux-*.so.*; do [ -e "$f" ] && { readlink -f "$f"; exit 0; }; done; exit 1') ||
        lc_fail "no dynamic loader found in the booted host"
    [[ $ldso == /usr/* ]] || lc_fail "the dynamic loader $ldso is not below /usr"
    libdir=/hostusr${ldso#/usr} libdir=${libdir%/*}
    # shellcheck disable=SC2016  # expanded by the container's sh
    cmd=(/bin/sh -c '/bin/ls -ld /d.sock && exec "$@"' sh "/hostusr${ldso#/usr}" --library-path "$libdir" /dcli -H unix:///d.sock version -f '{{.Server.Version}}')
    out=$(trun -e HOME=/tmp -v /usr:/hostusr:ro -v "$LC_DOCKER_BIN/docker:/dcli:ro" -v "$(sock ta):/d.sock" "$LC_IMAGE" "${cmd[@]}" 2>&1) ||
        lc_fail "a client in the tenant's container cannot use ta's own socket: $out"
    echo "ta's socket from inside: $out"
    [[ $(tail -n 1 <<<"$out") == "$(lc_exec "$LC_DOCKER_BIN/dockerd" --version | sed -n 's/^Docker version \([^, ]*\).*/\1/p')" ]] ||
        lc_fail "the client in the tenant's container did not get ta's version: $out"
    out=$(hd version -f '{{.Server.Version}}' 2>&1) || lc_fail "the host Docker does not answer root: $out"
    echo "root -> $HOST_SOCK: $out"
    if out=$(trun -e HOME=/tmp -v /usr:/hostusr:ro -v "$LC_DOCKER_BIN/docker:/dcli:ro" -v "$HOST_SOCK:/d.sock" "$LC_IMAGE" "${cmd[@]}" 2>&1); then
        lc_fail "a client in the tenant's container talks to the host Docker: $out"
    fi
    echo "$HOST_SOCK from inside: $out"
    grep -qi 'permission denied' <<<"$out" || lc_fail "the request to the host Docker failed, but not for permission: $out"
}

# Listeners: ta's own (its default bridge, tnet), rf's and tb's, each unpublished, each
# shown to answer first.
listeners() {
    local a
    td rm -f lt-b lt-n >/dev/null 2>&1 || true
    td network inspect tnet >/dev/null 2>&1 || td network create tnet >/dev/null
    td run -d --init --name lt-b "$LC_IMAGE" sh -c "$(httpd_script 'listener ta bridge' 80)" >/dev/null
    td run -d --init --name lt-n --network tnet "$LC_IMAGE" sh -c "$(httpd_script 'listener ta net' 80)" >/dev/null
    dk rf rm -f lf-rf >/dev/null 2>&1 || true
    dk rf run -d --init --name lf-rf "$LC_IMAGE" sh -c "$(httpd_script 'listener rf bridge' 80)" >/dev/null
    dk tb rm -f lb-tb >/dev/null 2>&1 || true
    dk tb run -d --init --name lb-tb "$LC_IMAGE" sh -c "$(httpd_script 'listener tb bridge' 80)" >/dev/null
    TA_B=$(cip_t lt-b) TA_N=$(cip_t lt-n) RF_B=$(cip rf lf-rf) TB_B=$(cip tb lb-tb)
    for a in "$TA_B" "$TA_N" "$RF_B" "$TB_B"; do is_ip "$a" || lc_fail "a listener has no address ('$TA_B' '$TA_N' '$RF_B' '$TB_B')"; done
    lc__wait_for 10 host_gets "$RF_B:80" 'listener rf bridge' || lc_fail "rf's listener does not answer root on the host"
    tb_up() { [[ $(dk tb exec lb-tb timeout 3 wget -q -O - http://127.0.0.1/ 2>/dev/null) == 'listener tb bridge' ]]; }
    lc__wait_for 10 tb_up || lc_fail "tb's listener does not answer inside its container"
    echo "listeners: ta bridge $TA_B, ta net $TA_N, rf $RF_B, tb $TB_B"
}

t06_network_isolation() {
    listeners
    # The positives: a client on a network reaches ta's container there, and from ta's
    # own network namespace (--network host) both. (Docker keeps its networks apart: the
    # default bridge does not reach tnet.)
    local -a common=("$RF_B:80=block" "$TB_B:80=block"
        "$SLIRP_HOST:$LOOPBACK_PORT=block" "$LC_CT_ADDR:$LOOPBACK_PORT=block" "$LC_CT_ADDR:$HOSTADDR_PORT=block")
    probe_check "tenant container on ta's default bridge" -- "$TA_B:80=reach:listener ta bridge" "${common[@]}"
    probe_check "tenant container on tnet" --network tnet -- "$TA_N:80=reach:listener ta net" "${common[@]}"
    probe_check "tenant container with --network host" --network host -- \
        "$TA_B:80=reach:listener ta bridge" "$TA_N:80=reach:listener ta net" "127.0.0.1:$LOOPBACK_PORT=block" "${common[@]}"
    # rf admits ta (AllowFrom=): the same clients reach rf's container. The rule is the
    # rootless ta's own (its reach), so it applies at ta's next restart
    # (dockyard.conf(5), AllowFrom=).
    write_conf rf 'Runtime=runc' '' '[Network]' 'AllowFrom=ta'
    lc_exec systemctl daemon-reload
    local n
    for n in rf ta; do
        lc_exec timeout 120 systemctl restart "${n}_docker.service" || lc_fail "$n does not restart: $(unit_state "${n}_docker.service")"
        wait_active "${n}_docker.service" 60
    done
    rules_exactly_once rf
    lc__wait_for 30 ta_answers || lc_fail "ta does not answer after its restart"
    listeners
    probe_check "tenant container on ta's default bridge, rf AllowFrom=ta" -- \
        "$RF_B:80=reach:listener rf bridge" "$TB_B:80=block" "$LC_CT_ADDR:$HOSTADDR_PORT=block"
    probe_check "tenant container with --network host, rf AllowFrom=ta" --network host -- \
        "$RF_B:80=reach:listener rf bridge" "$TB_B:80=block" "$LC_CT_ADDR:$HOSTADDR_PORT=block"
}

t07_privileged() {
    local out
    # A privileged container of the tenant's runs, and may change what its own
    # namespaces own (a link in its network namespace, a mount in its mount namespace).
    out=$(trun --privileged "$LC_IMAGE" sh -c 'ip link add v0 type veth peer name v1 && mkdir -p /mnt && mount -t tmpfs t /mnt && umount /mnt && echo privileged-ok' 2>&1) ||
        lc_fail "a privileged container of the tenant's fails: $out"
    [[ $out == privileged-ok ]] || lc_fail "privileged container: $out"
    # Where the caller is root on the host (rf's group), --privileged --pid=host reads
    # through PID 1's root; the tenant's does not.
    out=$(rf_privileged --cap-add SYS_PTRACE -- --pid=host "$LC_IMAGE" cat /proc/1/root/root/secret) ||
        lc_fail "--privileged --pid=host on rf does not read PID 1's root: $out"
    [[ $out == "$SECRET" ]] || lc_fail "--privileged --pid=host on rf gave '$out'"
    local opts
    for opts in "--privileged" "--cap-add SYS_PTRACE"; do
        # shellcheck disable=SC2086  # the options, one per word
        if out=$(trun $opts --pid=host "$LC_IMAGE" cat /proc/1/root/root/secret 2>&1); then
            lc_fail "the tenant's $opts --pid=host container read PID 1's root: $out"
        fi
        echo "tenant, $opts --pid=host, cat /proc/1/root/root/secret: $out"
        if grep -qF "$SECRET" <<<"$out"; then lc_fail "root's secret leaked: $out"; fi
    done
    if out=$(trun --privileged --pid=host "$LC_IMAGE" sh -c 'echo x >/proc/1/root/tmp/planted-by-tenant' 2>&1); then
        lc_fail "the tenant's --privileged --pid=host container wrote through PID 1's root: $out"
    fi
    if lc_exec test -e /tmp/planted-by-tenant; then lc_fail "/tmp/planted-by-tenant exists on the host"; fi
}

# /proc/sysrq-trigger opened for writing (append: nothing written, no SysRq runs).
t07b_sysrq() {
    local out open='exec 3>>/proc/sysrq-trigger && echo opened'
    out=$(rf_privileged --security-opt systempaths=unconfined -- "$LC_IMAGE" sh -c "$open") ||
        lc_fail "a privileged container on rootful rf cannot open /proc/sysrq-trigger: $out"
    [[ $out == opened ]] || lc_fail "rf: $out"
    if out=$(trun --privileged "$LC_IMAGE" sh -c "$open" 2>&1); then
        lc_fail "the tenant's privileged container opened /proc/sysrq-trigger for writing: $out"
    fi
    echo "tenant: $out"
}

# init_module (busybox insmod) of a file that is no module: root on the host gets past
# the permission check (the kernel refuses the file's format), the tenant does not.
t07c_insmod() {
    local out ins='head -c 4096 /dev/zero >/tmp/x.ko && insmod /tmp/x.ko'
    if out=$(rf_privileged --cap-add SYS_MODULE -- "$LC_IMAGE" sh -c "$ins"); then
        lc_fail "insmod of zeros succeeded on rf: $out"
    fi
    echo "rf: $out"
    if grep -qi 'not permitted' <<<"$out"; then lc_fail "insmod on rootful rf was refused for permission, so nothing here tells a refusal: $out"; fi
    if out=$(trun --privileged "$LC_IMAGE" sh -c "$ins" 2>&1); then lc_fail "insmod succeeded in the tenant's container: $out"; fi
    echo "tenant: $out"
    grep -qi 'not permitted' <<<"$out" || lc_fail "insmod in the tenant's privileged container failed, but not for permission: $out"
}

# What a rootful instance's group is: root on the host (dockyard.conf(5)).
t08_rootful_group_is_root() {
    local out
    out=$(udk "$RF_MEMBER" rf run --rm -v /root:/h "$LC_IMAGE" cat /h/secret 2>&1) || lc_fail "a member of rf_docker cannot read /root/secret through rf: $out"
    [[ $out == "$SECRET" ]] || lc_fail "rf: cat /h/secret gave '$out'"
    echo "a member of rf's group read root's secret through rf (a rootful group is root)"
}

# restart_ok BEFORE: after a restart, ta answers the tenant, runs a container, and
# nothing of BEFORE (ta_procs of the previous run) is left.
recovered() {
    local left
    ta_answers || lc_fail "ta does not answer the tenant: $(td version 2>&1 | tail -n 3)"
    [[ $(trun "$LC_IMAGE" echo run-ok 2>&1) == run-ok ]] || lc_fail "the tenant cannot run a container on ta: $(trun "$LC_IMAGE" echo run-ok 2>&1)"
    left=$(still_there "$1")
    [[ -z $left ]] || lc_fail "processes of ta's previous run left: $(tr '\n' ';' <<<"$left")"
}

t09_restart() {
    local before
    td rm -f keep >/dev/null 2>&1 || true
    td run -d --init --name keep "$LC_IMAGE" sleep 100000 >/dev/null
    before=$(ta_procs)
    echo "$before"
    lc_exec timeout 120 systemctl restart ta_docker.service || lc_fail "systemctl restart ta_docker failed: $(unit_state ta_docker.service)"
    wait_active ta_docker.service 60
    lc__wait_for 30 ta_answers || lc_fail "ta does not answer after its restart"
    recovered "$before"
}

# kill9 COMM: kill -9 ta's COMM; the unit restarts by itself (NRestarts grows), the
# socket answers the tenant again, and nothing of the previous run is left.
kill9() {
    local comm=$1 pid before restarts after
    # One kill per test: the unit's start limit (StartLimitBurst=) counts the starts of
    # the tests before, which are not what this one is about.
    lc_exec systemctl reset-failed ta_docker.service
    td rm -f keep >/dev/null 2>&1 || true
    td run -d --init --name keep "$LC_IMAGE" sleep 100000 >/dev/null
    pid=$(ta_proc "$comm")
    before=$(ta_procs)
    restarts=$(nrestarts ta_docker.service)
    echo "kill -9 $comm ($pid); NRestarts $restarts; processes before:"
    echo "$before"
    # Whatever happens, the tests after this one get a ta of a fresh start.
    trap 'lc_exec timeout 120 systemctl restart ta_docker.service >/dev/null 2>&1 || true' EXIT
    lc_exec kill -9 "$pid"
    came_back() {
        [[ $(nrestarts ta_docker.service) -gt $restarts ]] && active ta_docker.service && ta_answers
    }
    if ! lc__wait_for 60 came_back; then
        local up
        up=$(trun "$LC_IMAGE" nc -w 5 "$LC_UP_ADDR" "$LC_UPSTREAM_PORT" 2>&1 | tail -n 1) || true
        lc_fail "ta did not come back by Restart= within 60 s of kill -9 $comm: $(unit_state ta_docker.service | head -n 1) NRestarts $restarts -> $(nrestarts ta_docker.service); tenant's docker version: $(td version -f '{{.Server.Version}}' 2>&1 | tail -n 1); $comm of ta_docker now: '$(lc_exec pgrep -u ta_docker -x "$comm" | tr '\n' ' ')', the killed one: '$(lc_exec ps -o pid=,stat=,comm= -p "$pid" || true)'; a container to upstream: '$up'; left of the old run: $(still_there "$before" | tr '\n' ';')"
    fi
    after=$(nrestarts ta_docker.service)
    echo "NRestarts $restarts -> $after"
    recovered "$before"
    trap - EXIT
}
t10a_kill_rootlesskit() { kill9 rootlesskit; }
t10b_kill_dockerd() { kill9 dockerd; }
t10c_kill_slirp4netns() {
    kill9 slirp4netns
    upstream_ok "default bridge after slirp4netns came back" trun "$LC_IMAGE" nc -w 5 "$LC_UP_ADDR" "$LC_UPSTREAM_PORT"
}
# containerd is dockerd's child, not the unit's main process: dockerd starts a new one
# itself (its supervisor, as in a rootful dockerd that runs its own containerd), so the
# unit does not restart; the instance works on, its running container with it (the shim
# outlives containerd), and nothing of the killed containerd is left.
t10d_kill_containerd() {
    local pid dpid restarts cpid new out
    lc_exec systemctl reset-failed ta_docker.service
    trap 'lc_exec timeout 120 systemctl restart ta_docker.service >/dev/null 2>&1 || true' EXIT
    td rm -f keep >/dev/null 2>&1 || true
    td run -d --init --name keep "$LC_IMAGE" sleep 100000 >/dev/null
    cpid=$(td inspect -f '{{.State.Pid}}' keep)
    pid=$(ta_proc containerd)
    dpid=$(ta_proc dockerd)
    restarts=$(nrestarts ta_docker.service)
    echo "kill -9 containerd ($pid); dockerd $dpid; container keep $cpid; NRestarts $restarts"
    lc_exec kill -9 "$pid"
    new_containerd() {
        local p
        p=$(lc_exec pgrep -u ta_docker -x containerd) && [[ $p =~ ^[0-9]+$ && $p != "$pid" ]] && ta_answers
    }
    lc__wait_for 60 new_containerd ||
        lc_fail "no new containerd of ta within 60 s of kill -9 containerd: $(unit_state ta_docker.service | head -n 1); containerd now '$(lc_exec pgrep -u ta_docker -x containerd | tr '\n' ' ')'"
    new=$(ta_proc containerd)
    echo "containerd $pid -> $new; NRestarts $(nrestarts ta_docker.service)"
    if lc_exec kill -0 "$pid" 2>/dev/null; then lc_fail "the killed containerd $pid is still there"; fi
    [[ $(ta_proc dockerd) == "$dpid" ]] || lc_fail "ta's dockerd changed ($dpid -> $(ta_proc dockerd)) although only containerd was killed"
    lc_exec kill -0 "$cpid" || lc_fail "the container keep ($cpid) did not survive its containerd"
    exec_ok() { [[ $(td exec keep echo exec-ok 2>/dev/null) == exec-ok ]]; }
    lc__wait_for 30 exec_ok ||
        lc_fail "docker exec in keep fails after containerd came back: $(td exec keep echo exec-ok 2>&1); docker ps: $(td ps --format '{{.Names}} {{.Status}}' | tr '\n' ';') dockerd's log: $(lc_exec journalctl -q --no-pager -u ta_docker.service --since=-60s | grep -iE 'shim|task|level=(error|warn)' | tail -n 6 | tr '\n' ';')"
    out=$(trun "$LC_IMAGE" echo run-ok 2>&1)
    [[ $out == run-ok ]] || lc_fail "the tenant cannot run a container after containerd came back: $out"
    td rm -f keep >/dev/null
    trap - EXIT
}

t11_reboot() {
    local out
    lc_exec test -e /run/systemd/generator/multi-user.target.wants/ta_docker.service ||
        lc_fail "ta (Autostart=yes) is not wanted by multi-user.target"
    lc_reboot
    wait_active ta_docker.service 120
    wait_active docker.service 120
    lc_exec stat -c %a /dev/net/tun | grep -qx 666 || lc_fail "/dev/net/tun is not 0666 after the reboot"
    lc__wait_for 30 ta_answers || lc_fail "ta does not answer the tenant after the reboot: $(td version 2>&1 | tail -n 3)"
    [[ $(trun "$LC_IMAGE" echo run-ok 2>&1) == run-ok ]] || lc_fail "the tenant cannot run a container after the reboot"
    [[ $(nrestarts ta_docker.service) == 0 ]] || lc_fail "ta needed restarts to come up: NRestarts $(nrestarts ta_docker.service)"
    upstream_ok "default bridge after the reboot" trun "$LC_IMAGE" nc -w 5 "$LC_UP_ADDR" "$LC_UPSTREAM_PORT"
    # The host's Docker, again with a long-lived container (the reboot stopped it).
    hd rm -f hostc >/dev/null 2>&1 || true
    hd run -d --init --name hostc "$LC_IMAGE" sleep 100000 >/dev/null
    out=$(hd inspect -f '{{.State.Running}}' hostc)
    [[ $out == true ]] || lc_fail "the host Docker's container does not run: $out"
}

t12_destroy() {
    local uid range out first count problems=()
    uid=$(uid_of ta_docker)
    range=$(subid_range ta_docker)
    read -r first count <<<"${range:-0 0}"
    echo "ta_docker: uid $uid, subordinate ids $first+$count"
    td rm -f keep >/dev/null 2>&1 || true
    td run -d --init --name keep "$LC_IMAGE" sleep 100000 >/dev/null
    [[ -n $(user_procs "$uid" "$first" "$count") ]] || lc_fail "no process of ta before destroy: the test would prove nothing"
    # What destroy says and everything it should have removed are looked at and
    # reported together.
    out=$(dy destroy ta --yes 2>&1) || problems+=("dockyard destroy ta failed: $(tr '\n' ';' <<<"$out")")
    echo "$out"
    out=$(user_procs "$uid" "$first" "$count")
    [[ -z $out ]] || problems+=("processes of ta_docker or its subordinate ids left: $(tr '\n' ';' <<<"$out")")
    out=$(lc_exec grep -E '/var/lib/dockyard/ta(/| )|ta_docker' /proc/self/mountinfo || true)
    [[ -z $out ]] || problems+=("mounts of ta left: $out")
    local p
    for p in /run/ta_docker /run/dockyard/ta /var/lib/dockyard/ta "$CONF_DIR/ta.conf"; do
        if lc_exec test -e "$p"; then problems+=("$p left"); fi
    done
    out=$(lc_exec grep -H '^ta_docker:' /etc/subuid /etc/subgid || true)
    [[ -z $out ]] || problems+=("subordinate ids left: $out")
    out=$(lc_exec getent passwd ta_docker || true; lc_exec getent group ta_docker || true)
    [[ -z $out ]] || problems+=("account left: $out")
    out=$(iptables_lines ta; nft_lines ta)
    [[ -z $out ]] || problems+=("firewall lines of ta left: $(tr '\n' ';' <<<"$out")")
    out="$(lc_exec systemctl show -p LoadState --value ta_docker.service) $(lc_exec systemctl show -p ActiveState --value ta_docker.service)"
    [[ $out == "not-found inactive" ]] || problems+=("ta_docker.service is '$out' after destroy")
    # Everything else runs on: the host's Docker and its container, tb, rf.
    active docker.service || problems+=("the host's docker.service is not active")
    out=$(hd inspect -f '{{.State.Running}}' hostc 2>&1 || true)
    [[ $out == true ]] || problems+=("the host Docker's container does not run: $out")
    out=$(hd exec hostc echo exec-ok 2>&1 || true)
    [[ $out == exec-ok ]] || problems+=("docker exec in the host's container: $out")
    for p in tb rf; do
        out=$(dk "$p" version -f '{{.Server.Version}}' 2>&1) || problems+=("$p does not answer after ta's destroy: $out")
    done
    ((${#problems[@]} == 0)) || lc_fail "$(printf '%s; ' "${problems[@]}")"
}

t13_destroy_rest() {
    local n out
    local problems=()
    for n in tb rf; do
        out=$(dy destroy "$n" --yes 2>&1) || problems+=("dockyard destroy $n failed: $(tr '\n' ';' <<<"$out")")
        if lc_exec test -e "/var/lib/dockyard/$n"; then problems+=("/var/lib/dockyard/$n left"); fi
        no_rules "$n"
    done
    no_dockyard_firewall
    out=$(lc_exec grep -E '^(ta|tb|rf)_docker:' /etc/subuid /etc/subgid || true)
    [[ -z $out ]] || lc_fail "subordinate ids left: $out"
    out=$(lc_exec ps -eo user=,comm= | awk '$2 ~ /^(dockerd|containerd|rootlesskit|slirp4netns)$/' | sort)
    echo "daemons left: $(tr '\n' ';' <<<"$out")"
    [[ $(awk '$2 == "dockerd"' <<<"$out" | wc -l) == 1 ]] || lc_fail "not just the host's dockerd left: $out"
    if grep -qE 'rootlesskit|slirp4netns' <<<"$out"; then lc_fail "rootless daemons left: $out"; fi
    active docker.service || lc_fail "the host's docker.service is not active"
    [[ $(hd inspect -f '{{.State.Running}}' hostc 2>&1) == true ]] || lc_fail "the host Docker's container does not run"
    ((${#problems[@]} == 0)) || lc_fail "$(printf '%s; ' "${problems[@]}")"
}

# skip_unless LABEL FUNC PATH: lc_test when the booted host has PATH, else a skip line
# with the reason (this kernel lacks the interface; nothing to refuse).
skip_unless() {
    if lc_exec test -e "$3"; then
        lc_test "$1" "$2"
    else
        printf 'skip - %s: the kernel has no %s (uname -r %s), so nobody, root included, can use it\n' "$1" "$3" "$(uname -r)"
    fi
}

# --- run -------------------------------------------------------------------------------
lc_init
lc_rootfs
lc_boot tenant
install_dockyard

lc_test "1. ta, tb rootless and rf rootful started together: daemons as the instance users, socket 0660 to the group, 65536 subordinate ids, no host bridge; host Docker beside" t01_instances
lc_test "2. tenant through ta (dockyard env): rootless daemon, container runs as ta_docker, user network, DNS and upstream from both, published port from upstream" t02_tenant_uses_ta
lc_test "2b. dockyard status --json: ta mode rootless, rf rootful, both sockets ok; dockyard verify ta passes" t02b_status_mode
lc_test "3. sockets: the tenant reaches ta but not tb; a user outside ta_docker does not reach ta" t03_sockets
lc_test "4. host files through -v: world-readable yes, /root no; volume writable, /etc/passwd not; ta's data root yes, tb's no" t04_host_files
lc_test "5. a client in the tenant's container: ta's own socket answers, the host Docker's does not" t05_docker_sockets
lc_test "6. from the tenant's containers (bridge, --network host): own containers yes; rf, tb, host loopback and host address no; rf AllowFrom=ta opens rf only" t06_network_isolation
lc_test "7. --privileged works in its namespaces; --privileged (or SYS_PTRACE) --pid=host does not reach PID 1's root (rf's does)" t07_privileged
skip_unless "7b. /proc/sysrq-trigger: rf's privileged container opens it for writing, the tenant's cannot" t07b_sysrq /proc/sysrq-trigger
skip_unless "7c. init_module: refused for permission to the tenant's privileged container, not to rf's" t07c_insmod /proc/modules
lc_test "8. rootful: a member of rf's group reads /root/secret (a rootful group is root)" t08_rootful_group_is_root
lc_test "9. restart ta: answers, runs containers, nothing of the old run left" t09_restart
lc_test "10a. kill -9 ta's rootlesskit: back by Restart=, nothing of the old run left" t10a_kill_rootlesskit
lc_test "10b. kill -9 ta's dockerd: back by Restart=, nothing of the old run left" t10b_kill_dockerd
lc_test "10c. kill -9 ta's slirp4netns: back by Restart=, nothing of the old run left, upstream again" t10c_kill_slirp4netns
lc_test "10d. kill -9 ta's containerd: dockerd starts a new one, the old is gone, the running container and exec survive" t10d_kill_containerd
lc_test "11. reboot: ta (Autostart=yes) answers the tenant at its first start, /dev/net/tun 0666 again" t11_reboot
lc_test "12. dockyard destroy ta: no process, mount, /run state, data, subordinate ids, account, unit or firewall line of it; host Docker, tb, rf run on" t12_destroy
lc_test "13. destroy tb and rf: nothing of Dockyard in the firewall, no rootless daemon, the host's Docker runs on" t13_destroy_rest

lc_log "timings: rootfs ${LC_ROOTFS_SECONDS}s, boot ${LC_BOOT_SECONDS}s, total $(lc__elapsed "$SUITE_T0")s before teardown"
lc_summary
