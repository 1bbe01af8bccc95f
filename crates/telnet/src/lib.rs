//! sans-IO telnet (RFC 854, RFC 1143 Q-method)
