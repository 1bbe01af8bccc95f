#!/bin/sh
# dialgate `exec` module example: a Username/Password dialog against a text
# file of "name:sha256-hex-of-password" lines (see README.md).
#
# stdin: what the caller types; stdout: what the caller sees; stderr: the
# server log; fd 3: the verdict, ONE line:
#   SUCCESS <user> | FAILURE <user> | ERROR <code>
set -u

db=${1:-}
tries=${2:-3}
if [ -z "$db" ] || [ ! -r "$db" ]; then
    echo "userpass.sh: cannot read the users file '$db'" >&2
    # 536872447 = 0x2000_05FF: "the example is misconfigured".
    echo "ERROR 536872447" >&3
    exit 0
fi

# One line from the caller, without its CR LF (or LF). Lines must end with
# LF: a lone CR is not a line end for `read`.
read_line() {
    IFS= read -r line || exit 1
    line=$(printf '%s' "$line" | tr -d '\r')
}

# The hash stored for user $1, on stdout.
lookup() {
    while IFS=: read -r name hash; do
        if [ "$name" = "$1" ]; then
            printf '%s' "$hash"
            return 0
        fi
    done < "$db"
    return 1
}

printf 'Welcome to %s\r\n' "${DIALGATE_DEVICE:-dialgate}"
user=
n=0
while [ "$n" -lt "$tries" ]; do
    n=$((n + 1))
    printf 'Username: '
    read_line
    user=$line
    printf '%s\r\n' "$user"
    printf 'Password: '
    read_line
    pw=$line
    printf '\r\n'
    case $user in
        '' | *[!A-Za-z0-9._@-]*) ok=no ;;
        *)
            want=$(lookup "$user") || want=
            got=$(printf '%s' "$pw" | sha256sum | cut -d' ' -f1)
            if [ -n "$want" ] && [ "$want" = "$got" ]; then ok=yes; else ok=no; fi
            ;;
    esac
    if [ "$ok" = yes ]; then
        printf 'Welcome, %s.\r\n' "$user"
        echo "SUCCESS $user" >&3
        exit 0
    fi
    printf 'Login incorrect\r\n'
done
echo "userpass.sh: $n failed attempts for '$user' on ${DIALGATE_DEVICE:-?}" >&2
case $user in
    '' | *[!A-Za-z0-9._@-]*) user=unknown ;;
esac
echo "FAILURE $user" >&3
exit 0
