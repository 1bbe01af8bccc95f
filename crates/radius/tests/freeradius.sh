#!/bin/sh
# Start/stop a private FreeRADIUS 3.2 (Debian `freeradius`) on loopback for tests.
#
#   freeradius.sh start AUTH_PORT [ACCT_PORT]
#       Writes a config into a fresh temp dir, starts `freeradius -f -X` in the
#       background (wrapped in `timeout`, so it dies by itself after
#       $FREERADIUS_MAX_SECONDS, default 600), waits until it is ready and prints
#       one line on stdout: "PID DIR". PID is the process to signal; DIR holds
#       radiusd.out (the -X debug log) and acct/detail (accounting records).
#       ACCT_PORT defaults to AUTH_PORT+1. Exit status 0 when ready, 1 otherwise
#       (the reason and the log tail go to stderr).
#   freeradius.sh stop PID DIR
#       SIGTERM, wait up to 5 s, SIGKILL if needed; removes DIR unless KEEP_DIR=1.
#
# Environment: RADIUS_SECRET (default testing123), REQUIRE_MA (no|yes, default no:
# the client's require_message_authenticator), SIGN_REPLIES (yes|no, default yes:
# every Access-Accept, -Reject and -Challenge carries a Message-Authenticator, as
# FreeRADIUS 3.2.5 and later do by themselves; 3.2.1 only when told, with
# `update reply { &Message-Authenticator := 0x00 }`; `no` is stock 3.2.1, whose
# replies dialgate refuses by default), FREERADIUS (default /usr/sbin/freeradius).
#
# Users: alice/alicepass (Accept with Reply-Message "Hello, alice",
# Framed-IP-Address 10.99.0.2, Session-Timeout 3600; PAP, CHAP, MS-CHAP, MS-CHAPv2);
# bob/bobpass then PIN 4321 (PAP only: an Access-Challenge "Enter PIN:" with
# Prompt = No-Echo and a State, then the PIN with that State). Rejects carry
# Reply-Message "Login incorrect". reject_delay = 0.
# Recipe: /work/shared/design/test-recipes-radius-pam.md, section 1.
set -eu

FREERADIUS=${FREERADIUS:-/usr/sbin/freeradius}

usage() {
    echo "usage: $0 start AUTH_PORT [ACCT_PORT] | stop PID DIR" >&2
    exit 2
}

is_port() {
    case $1 in
        '' | *[!0-9]*) return 1 ;;
    esac
    [ "$1" -ge 1 ] && [ "$1" -le 65535 ]
}

start() {
    auth_port=$1
    acct_port=${2:-$((auth_port + 1))}
    is_port "$auth_port" && is_port "$acct_port" || usage
    secret=${RADIUS_SECRET:-testing123}
    require_ma=${REQUIRE_MA:-no}
    case $require_ma in yes | no) ;; *) echo "REQUIRE_MA must be yes or no" >&2; exit 2 ;; esac
    case ${SIGN_REPLIES:-yes} in
        yes) sign='update reply { \&Message-Authenticator := 0x00 }' ;;
        no) sign='' ;;
        *) echo "SIGN_REPLIES must be yes or no" >&2; exit 2 ;;
    esac
    case $secret in *[\"\\]* | '') echo "RADIUS_SECRET must be non-empty without quotes or backslashes" >&2; exit 2 ;; esac
    if [ ! -x "$FREERADIUS" ]; then
        echo "freeradius.sh: $FREERADIUS not found (apt-get install -y freeradius)" >&2
        exit 1
    fi
    umask 022
    dir=$(mktemp -d "${TMPDIR:-/tmp}/radius-test.XXXXXX")
    mkdir -p "$dir/acct"
    cat > "$dir/radiusd.conf.in" <<'EOF'
# Private FreeRADIUS 3.2 config for dialgate tests (written by freeradius.sh).
# ${confdir} is the -d directory.
name       = radiusd
libdir     = /usr/lib/freeradius
logdir     = ${confdir}/log
radacctdir = ${confdir}/acct
run_dir    = ${confdir}/run
pidfile    = ${run_dir}/radiusd.pid
max_request_time = 30
cleanup_delay    = 5
max_requests     = 1024
hostname_lookups = no

log {
	destination = stdout
	colourise   = no
	auth        = yes
}

security {
	allow_core_dumps = no
	max_attributes   = 200
	reject_delay     = 0
	status_server    = yes
}

thread pool {
	start_servers     = 2
	max_servers       = 4
	min_spare_servers = 1
	max_spare_servers = 2
}

client localhost {
	ipaddr = 127.0.0.1
	secret = "@SECRET@"
	require_message_authenticator = @REQUIRE_MA@
}

modules {
	pap {
	}
	chap {
	}
	mschap {
	}
	files {
		filename = ${confdir}/users
	}
	detail {
		filename    = ${radacctdir}/detail
		permissions = 0600
		header      = "%t"
	}
	attr_filter access_reject {
		key      = "%{User-Name}"
		filename = ${confdir}/access_reject
	}
	always ok {
		rcode = ok
	}
	always reject {
		rcode = reject
	}
	always handled {
		rcode = handled
	}
}

server default {
	listen {
		type   = auth
		ipaddr = 127.0.0.1
		port   = @AUTH_PORT@
	}
	listen {
		type   = acct
		ipaddr = 127.0.0.1
		port   = @ACCT_PORT@
	}

	authorize {
		files
		if (&request:State) {
			if (&session-state:Tmp-String-0 == "await-pin") {
				update control {
					&Auth-Type := PIN
				}
				ok
				return
			}
			reject
		}
		chap
		mschap
		pap
	}

	authenticate {
		Auth-Type PAP {
			pap
			if (ok && &control:Tmp-String-1) {
				update session-state {
					&Tmp-String-0 := "await-pin"
					&Tmp-String-1 := &control:Tmp-String-1
					&User-Name    := &request:User-Name
				}
				update {
					&reply: !* ANY
				}
				update reply {
					&Reply-Message := "Enter PIN:"
					&Prompt        := No-Echo
				}
				@SIGN@
				update control {
					&Response-Packet-Type := Access-Challenge
				}
				handled
			}
		}
		Auth-Type CHAP {
			chap
		}
		Auth-Type MS-CHAP {
			mschap
		}
		Auth-Type PIN {
			if ((&User-Name == &session-state:User-Name) && \
			    (&User-Password == &session-state:Tmp-String-1)) {
				ok
			}
			else {
				reject
			}
		}
	}

	preacct {
	}
	accounting {
		detail
		ok
	}
	post-auth {
		@SIGN@
		Post-Auth-Type REJECT {
			access_reject
			update reply {
				&Reply-Message := "Login incorrect"
			}
			@SIGN@
		}
	}
}
EOF
    sed -e "s/@AUTH_PORT@/$auth_port/" -e "s/@ACCT_PORT@/$acct_port/" \
        -e "s/@SECRET@/$secret/" -e "s/@REQUIRE_MA@/$require_ma/" -e "s/@SIGN@/$sign/" \
        "$dir/radiusd.conf.in" > "$dir/radiusd.conf"
    rm -f "$dir/radiusd.conf.in"
    cat > "$dir/users" <<'EOF'
alice	Cleartext-Password := "alicepass"
	Reply-Message := "Hello, alice",
	Framed-IP-Address := 10.99.0.2,
	Session-Timeout := 3600

bob	Cleartext-Password := "bobpass", Tmp-String-1 := "4321"
	Reply-Message := "Hello, bob"
EOF
    cat > "$dir/access_reject" <<'EOF'
DEFAULT
	EAP-Message =* ANY,
	Message-Authenticator =* ANY,
	Reply-Message =* ANY,
	MS-CHAP-Error =* ANY,
	Proxy-State =* ANY
EOF
    chmod 0644 "$dir/radiusd.conf" "$dir/users" "$dir/access_reject"
    timeout "${FREERADIUS_MAX_SECONDS:-600}" "$FREERADIUS" -f -X -d "$dir" \
        > "$dir/radiusd.out" 2>&1 < /dev/null &
    pid=$!
    i=0
    while [ $i -lt 200 ]; do
        if grep -q 'Ready to process requests' "$dir/radiusd.out" 2>/dev/null; then
            echo "$pid $dir"
            exit 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "freeradius.sh: freeradius exited during startup; log tail:" >&2
            tail -n 20 "$dir/radiusd.out" >&2 || true
            rm -rf "$dir"
            exit 1
        fi
        sleep 0.05
        i=$((i + 1))
    done
    echo "freeradius.sh: freeradius not ready after 10 s; log tail:" >&2
    tail -n 20 "$dir/radiusd.out" >&2 || true
    kill -TERM "$pid" 2>/dev/null || true
    rm -rf "$dir"
    exit 1
}

stop() {
    pid=$1
    dir=$2
    case $pid in '' | *[!0-9]*) usage ;; esac
    if kill -TERM "$pid" 2>/dev/null; then
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
            sleep 0.05
            i=$((i + 1))
        done
        if kill -0 "$pid" 2>/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    case $dir in
        */radius-test.*)
            if [ "${KEEP_DIR:-0}" != 1 ]; then rm -rf "$dir"; fi ;;
        *) echo "freeradius.sh: refusing to remove $dir (not a radius-test dir)" >&2 ;;
    esac
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case $cmd in
    start) [ $# -ge 1 ] && [ $# -le 2 ] || usage; start "$@" ;;
    stop) [ $# -eq 2 ] || usage; stop "$@" ;;
    *) usage ;;
esac
