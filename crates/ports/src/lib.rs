//! ports: TCP, telnet, pty drivers
