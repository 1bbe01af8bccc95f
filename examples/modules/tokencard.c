/*
 * tokencard.c -- a token-card challenge/response security module.
 *
 * The dialog:
 *   Name: alice
 *   Challenge: 3f9a0c1b7d2e4a65
 *   Response: 123456
 * The caller's token (or a script holding the same key) computes the
 * response as the 6-digit HOTP value of RFC 4226, section 5.3 (dynamic
 * truncation of HMAC-SHA-1), but over the challenge text instead of a
 * counter:
 *     response = Truncate(HMAC-SHA-1(key, challenge)) mod 10^6
 * written as 6 decimal digits with leading zeros. HMAC is RFC 2104, SHA-1 is
 * FIPS 180-4.
 *
 * Keys: the file named by the environment variable DIALGATE_TOKENCARD_KEYS
 * (default /etc/dialgate/tokencard.keys), read at every call, one user per
 * line:  NAME HEXKEY   (# starts a comment). An unknown name still gets a
 * challenge (so names cannot be probed) and then fails.
 *
 * Build: cc -shared -fPIC tokencard.c -o tokencard.so
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dialog_util.h"

#define PROMPT_TIMEOUT 60 /* seconds per answer */
#define MAX_KEY 64

/* ---- SHA-1 (FIPS 180-4, section 6.1) ---------------------------------- */
struct sha1 {
    uint32_t h[5];
    uint64_t bytes;
    BYTE block[64];
    size_t used;
};

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(struct sha1 *s, const BYTE *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) { f = (b & c) | (~b & d); k = 0x5a827999; }
        else if (i < 40) { f = b ^ c ^ d; k = 0x6ed9eba1; }
        else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8f1bbcdc; }
        else { f = b ^ c ^ d; k = 0xca62c1d6; }
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d; d = c; c = rol(b, 30); b = a; a = t;
    }
    s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d; s->h[4] += e;
}

static void sha1_init(struct sha1 *s)
{
    static const uint32_t iv[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    memcpy(s->h, iv, sizeof iv);
    s->bytes = 0;
    s->used = 0;
}

static void sha1_update(struct sha1 *s, const BYTE *p, size_t n)
{
    s->bytes += n;
    while (n > 0) {
        size_t k = 64 - s->used < n ? 64 - s->used : n;
        memcpy(s->block + s->used, p, k);
        s->used += k;
        p += k;
        n -= k;
        if (s->used == 64) {
            sha1_block(s, s->block);
            s->used = 0;
        }
    }
}

static void sha1_final(struct sha1 *s, BYTE out[20])
{
    uint64_t bits = s->bytes * 8;
    BYTE pad = 0x80, zero = 0, len[8];
    sha1_update(s, &pad, 1);
    while (s->used != 56)
        sha1_update(s, &zero, 1);
    for (int i = 0; i < 8; i++)
        len[i] = (BYTE)(bits >> (56 - 8 * i));
    sha1_update(s, len, 8);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (BYTE)(s->h[i] >> 24);
        out[4 * i + 1] = (BYTE)(s->h[i] >> 16);
        out[4 * i + 2] = (BYTE)(s->h[i] >> 8);
        out[4 * i + 3] = (BYTE)s->h[i];
    }
}

/* ---- HMAC-SHA-1 (RFC 2104) and the RFC 4226 truncation ----------------- */
static void hmac_sha1(const BYTE *key, size_t klen, const BYTE *msg, size_t mlen, BYTE out[20])
{
    BYTE k[64] = {0}, ipad[64], opad[64], inner[20];
    struct sha1 s;
    if (klen > 64) {
        sha1_init(&s);
        sha1_update(&s, key, klen);
        sha1_final(&s, k);
    } else {
        memcpy(k, key, klen);
    }
    for (int i = 0; i < 64; i++) {
        ipad[i] = k[i] ^ 0x36;
        opad[i] = k[i] ^ 0x5c;
    }
    sha1_init(&s);
    sha1_update(&s, ipad, 64);
    sha1_update(&s, msg, mlen);
    sha1_final(&s, inner);
    sha1_init(&s);
    sha1_update(&s, opad, 64);
    sha1_update(&s, inner, 20);
    sha1_final(&s, out);
}

static uint32_t truncate6(const BYTE mac[20])
{
    int off = mac[19] & 0x0f;
    uint32_t bin = (uint32_t)(mac[off] & 0x7f) << 24 | (uint32_t)mac[off + 1] << 16 |
                   (uint32_t)mac[off + 2] << 8 | mac[off + 3];
    return bin % 1000000;
}

/* ---- keys -------------------------------------------------------------- */
static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Finds name's key. Returns its length, 0 if unknown, -1 if the file cannot
 * be read. */
static int lookup_key(const char *name, BYTE key[MAX_KEY])
{
    const char *path = getenv("DIALGATE_TOKENCARD_KEYS");
    if (!path || !*path)
        path = "/etc/dialgate/tokencard.keys";
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char line[512];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        char *save = NULL;
        char *user = strtok_r(line, " \t\r\n", &save);
        char *hex = strtok_r(NULL, " \t\r\n", &save);
        if (!user || !hex || user[0] == '#' || strcmp(user, name) != 0)
            continue;
        size_t n = strlen(hex);
        if (n % 2 != 0 || n / 2 > MAX_KEY || n == 0)
            continue;
        int ok = 1;
        for (size_t i = 0; i < n / 2; i++) {
            int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
            if (hi < 0 || lo < 0) { ok = 0; break; }
            key[i] = (BYTE)(hi << 4 | lo);
        }
        if (ok)
            found = (int)(n / 2);
    }
    fclose(f);
    return found;
}

static int random_bytes(BYTE *p, size_t n)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, p + got, n - got);
        if (k <= 0) { close(fd); return -1; }
        got += (size_t)k;
    }
    close(fd);
    return 0;
}

/* ---- the dialog -------------------------------------------------------- */
static void *dialog(void *arg)
{
    struct conv *c = arg;
    char name[UNLEN + 1], answer[64], challenge[33], expected[8], msg[96];
    BYTE key[MAX_KEY], rnd[16], mac[20];
    DWORD r;

    if ((r = send_str(c, "Name: ")) != NO_ERROR ||
        (r = read_line(c, name, sizeof name, PROMPT_TIMEOUT)) != NO_ERROR) {
        finish(c, SECURITYMSG_ERROR, r, NULL);
        return NULL;
    }
    int klen = lookup_key(name, key);
    if (klen < 0) {
        send_str(c, "\r\nService unavailable.\r\n");
        finish(c, SECURITYMSG_ERROR, 2 /* ERROR_FILE_NOT_FOUND */, NULL);
        return NULL;
    }
    if (random_bytes(rnd, 8) != 0) {
        finish(c, SECURITYMSG_ERROR, 8, NULL);
        return NULL;
    }
    for (int i = 0; i < 8; i++)
        snprintf(challenge + 2 * i, 3, "%02x", rnd[i]);
    snprintf(msg, sizeof msg, "Challenge: %s\r\nResponse: ", challenge);
    if ((r = send_str(c, msg)) != NO_ERROR ||
        (r = read_line(c, answer, sizeof answer, PROMPT_TIMEOUT)) != NO_ERROR) {
        finish(c, SECURITYMSG_ERROR, r, NULL);
        return NULL;
    }
    int ok = 0;
    if (klen > 0) {
        hmac_sha1(key, (size_t)klen, (const BYTE *)challenge, strlen(challenge), mac);
        snprintf(expected, sizeof expected, "%06u", truncate6(mac));
        ok = secret_equal(answer, expected);
    }
    memset(key, 0, sizeof key);
    /* An empty name cannot be a verdict's UserName. */
    const char *who = name[0] ? name : "(none)";
    if (ok) {
        send_str(c, "\r\nAccepted.\r\n");
        finish(c, SECURITYMSG_SUCCESS, 0, who);
    } else {
        send_str(c, "\r\nAccess denied.\r\n");
        finish(c, SECURITYMSG_FAILURE, 0, who);
    }
    return NULL;
}

DWORD RasSecurityDialogBegin(HPORT hPort, PBYTE pSendBuf, DWORD SendBufSize, PBYTE pRecvBuf,
                             DWORD RecvBufSize, VOID (*RasSecurityDialogComplete)(SECURITY_MESSAGE *))
{
    return start_dialog(hPort, pSendBuf, SendBufSize, pRecvBuf, RecvBufSize,
                        RasSecurityDialogComplete, dialog);
}

DWORD RasSecurityDialogEnd(HPORT hPort)
{
    return end_dialog(hPort);
}
