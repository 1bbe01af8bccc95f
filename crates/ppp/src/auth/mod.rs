//! PPP authentication protocols: PAP, CHAP-MD5, MS-CHAPv2.
