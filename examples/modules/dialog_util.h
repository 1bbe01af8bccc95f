/*
 * dialog_util.h -- small helpers shared by the example security modules:
 * per-port state, sending text through the send buffer, reading a line
 * through Receive + eventfd, and completing. Header-only (static functions)
 * so each module still builds with plain `cc -shared -fPIC x.c -o x.so`.
 */
#ifndef DIALOG_UTIL_H
#define DIALOG_UTIL_H

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../../include/rasshost.h"

/* One dialog (one port). */
struct conv {
    HPORT hport;
    PBYTE sendbuf;
    DWORD sendsize;
    PBYTE recvbuf;
    DWORD recvsize;
    VOID (*complete)(SECURITY_MESSAGE *);
    int efd;
    pthread_t thread;
    /* bytes received after the end of the last line */
    BYTE carry[256];
    size_t carry_len;
    int skip_lf; /* the last line ended with CR: drop one LF that follows */
    struct conv *next;
};

static pthread_mutex_t conv_lock = PTHREAD_MUTEX_INITIALIZER;
static struct conv *conv_list;

static void conv_add(struct conv *c)
{
    pthread_mutex_lock(&conv_lock);
    c->next = conv_list;
    conv_list = c;
    pthread_mutex_unlock(&conv_lock);
}

/* Unlinks and returns the dialog of hport, or NULL. */
static struct conv *conv_take(HPORT hport)
{
    pthread_mutex_lock(&conv_lock);
    struct conv **pp = &conv_list;
    struct conv *found = NULL;
    while (*pp) {
        if ((*pp)->hport == hport) {
            found = *pp;
            *pp = found->next;
            break;
        }
        pp = &(*pp)->next;
    }
    pthread_mutex_unlock(&conv_lock);
    return found;
}

/* Sends a NUL-terminated string, in pieces as large as the send buffer. */
static DWORD send_str(struct conv *c, const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        size_t k = n < c->sendsize ? n : c->sendsize;
        if (k > 0xffff)
            k = 0xffff;
        memcpy(c->sendbuf, s, k);
        DWORD r = RasSecurityDialogSend(c->hport, c->sendbuf, (WORD)k);
        if (r != PENDING)
            return r;
        s += k;
        n -= k;
    }
    return NO_ERROR;
}

/* One Receive: waits for the event. Returns NO_ERROR with *got bytes in
 * recvbuf, or the error (638 timeout, 619 hang-up, ...). */
static DWORD receive_some(struct conv *c, DWORD timeout, size_t *got)
{
    WORD len = c->recvsize > 0xffff ? 0xffff : (WORD)c->recvsize;
    DWORD r = RasSecurityDialogReceive(c->hport, c->recvbuf, &len, timeout, c->efd);
    if (r != PENDING)
        return r;
    uint64_t v;
    for (;;) {
        ssize_t k = read(c->efd, &v, sizeof v);
        if (k == (ssize_t)sizeof v)
            break;
        if (k < 0 && errno == EINTR)
            continue;
        return ERROR_PORT_DISCONNECTED;
    }
    if (len == 0) {
        RAS_SECURITY_INFO info;
        if (RasSecurityDialogGetInfo(c->hport, &info) != NO_ERROR)
            return ERROR_PORT_DISCONNECTED;
        return info.LastError ? info.LastError : ERROR_PORT_DISCONNECTED;
    }
    *got = len;
    return NO_ERROR;
}

/* Reads one line (ended by CR, LF or CR LF) into out (NUL-terminated, at
 * most cap-1 bytes kept). Returns NO_ERROR or the Receive error. */
static DWORD read_line(struct conv *c, char *out, size_t cap, DWORD timeout)
{
    size_t n = 0;
    for (;;) {
        while (c->carry_len > 0) {
            BYTE b = c->carry[0];
            memmove(c->carry, c->carry + 1, --c->carry_len);
            if (c->skip_lf) {
                c->skip_lf = 0;
                if (b == '\n')
                    continue;
            }
            if (b == '\r' || b == '\n') {
                c->skip_lf = (b == '\r');
                out[n] = 0;
                return NO_ERROR;
            }
            if (n + 1 < cap)
                out[n++] = (char)b;
        }
        size_t got = 0;
        DWORD r = receive_some(c, timeout, &got);
        if (r != NO_ERROR)
            return r;
        if (got > sizeof c->carry)
            got = sizeof c->carry;
        memcpy(c->carry, c->recvbuf, got);
        c->carry_len = got;
    }
}

/* Completes with a verdict. */
static void finish(struct conv *c, DWORD id, DWORD err, const char *user)
{
    SECURITY_MESSAGE m;
    memset(&m, 0, sizeof m);
    m.dwMsgId = id;
    m.hPort = c->hport;
    m.dwError = err;
    if (user)
        strncpy(m.UserName, user, UNLEN);
    c->complete(&m);
}

/* Constant-time comparison of two NUL-terminated strings. */
static inline int secret_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = (unsigned char)(la != lb);
    for (size_t i = 0; i < la && i < lb; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

/* The usual Begin: state, an eventfd, a dialog thread running fn. */
static DWORD start_dialog(HPORT hPort, PBYTE pSendBuf, DWORD SendBufSize, PBYTE pRecvBuf,
                          DWORD RecvBufSize, VOID (*complete)(SECURITY_MESSAGE *),
                          void *(*fn)(void *))
{
    struct conv *c = calloc(1, sizeof *c);
    if (!c)
        return 8; /* ERROR_NOT_ENOUGH_MEMORY */
    c->hport = hPort;
    c->sendbuf = pSendBuf;
    c->sendsize = SendBufSize;
    c->recvbuf = pRecvBuf;
    c->recvsize = RecvBufSize;
    c->complete = complete;
    c->efd = eventfd(0, EFD_CLOEXEC);
    if (c->efd < 0) {
        free(c);
        return 8;
    }
    conv_add(c);
    if (pthread_create(&c->thread, NULL, fn, c) != 0) {
        conv_take(hPort);
        close(c->efd);
        free(c);
        return 8;
    }
    return NO_ERROR;
}

/* The usual End: the host has already failed any pending Receive (619), so
 * the dialog thread finishes promptly; wait for it and free the state. */
static DWORD end_dialog(HPORT hPort)
{
    struct conv *c = conv_take(hPort);
    if (!c)
        return ERROR_INVALID_PORT_HANDLE;
    pthread_join(c->thread, NULL);
    close(c->efd);
    free(c);
    return NO_ERROR;
}

#endif
