#!/usr/bin/env python3
"""dialgate `exec` module example: a Username/Password dialog against a text
file of "name:sha256-hex-of-password" lines (see README.md).

stdin: what the caller types; stdout: what the caller sees; stderr: the
server log; fd 3: the verdict, ONE line:
    SUCCESS <user> | FAILURE <user> | ERROR <code>
"""

import hashlib
import hmac
import os
import re
import sys

NAME = re.compile(r"[A-Za-z0-9._@-]{1,256}")
# 0x2000_05FF: "the example is misconfigured".
ERROR_MISCONFIGURED = 536872447


def verdict(line):
    os.write(3, (line + "\n").encode())
    sys.exit(0)


def say(text):
    sys.stdout.write(text)
    sys.stdout.flush()


def read_line():
    """One caller line (ending in LF or CR LF), without its line end."""
    data = sys.stdin.buffer.readline(1024)
    if not data:
        sys.exit(1)  # the caller is gone; dialgate ends the dialog
    return data.rstrip(b"\r\n").decode("utf-8", "replace")


def load(path):
    users = {}
    with open(path, encoding="utf-8") as f:
        for raw in f:
            name, sep, digest = raw.strip().partition(":")
            if sep and NAME.fullmatch(name):
                users[name] = digest.lower()
    return users


def main():
    if len(sys.argv) < 2:
        print("userpass.py: usage: userpass.py USERS-FILE [TRIES]", file=sys.stderr)
        verdict("ERROR %d" % ERROR_MISCONFIGURED)
    try:
        users = load(sys.argv[1])
    except OSError as e:
        print("userpass.py: cannot read the users file: %s" % e, file=sys.stderr)
        verdict("ERROR %d" % ERROR_MISCONFIGURED)
    tries = int(sys.argv[2]) if len(sys.argv) > 2 else 3

    say("Welcome to %s\r\n" % os.environ.get("DIALGATE_DEVICE", "dialgate"))
    user = ""
    for _ in range(tries):
        say("Username: ")
        user = read_line()
        say(user + "\r\n")
        say("Password: ")
        password = read_line()
        say("\r\n")
        got = hashlib.sha256(password.encode()).hexdigest()
        want = users.get(user, "0" * 64) if NAME.fullmatch(user) else "0" * 64
        if hmac.compare_digest(got, want) and NAME.fullmatch(user) and user in users:
            say("Welcome, %s.\r\n" % user)
            verdict("SUCCESS " + user)
        say("Login incorrect\r\n")
    print("userpass.py: %d failed attempts for %r" % (tries, user), file=sys.stderr)
    verdict("FAILURE " + (user if NAME.fullmatch(user) else "unknown"))


main()
