/* A test module: its first input line names what to do wrong. It reports
 * the codes it got as "R a b c\r\n" and completes; see tests/inprocess.rs. */
#include <signal.h>
#include <stdio.h>
#include "../../../../examples/modules/dialog_util.h"

/* Set by "abort-in-end": End crashes (the worker dies with it); by
 * "fork-abort-in-end" End first forks a process that keeps every
 * descriptor, the worker's socket too, for 10 s. */
static volatile int crash_in_end;
static volatile int fork_in_end;

static void report(struct conv *c, const char *fmt, DWORD a, DWORD b, DWORD d)
{
    char buf[128];
    snprintf(buf, sizeof buf, fmt, a, b, d);
    send_str(c, buf);
}

static DWORD wait_event(struct conv *c, WORD *len)
{
    uint64_t v;
    if (read(c->efd, &v, sizeof v) != (ssize_t)sizeof v)
        return 1;
    if (*len == 0) {
        RAS_SECURITY_INFO info;
        RasSecurityDialogGetInfo(c->hport, &info);
        return info.LastError;
    }
    return 0;
}

static void *dialog(void *arg)
{
    struct conv *c = arg;
    char cmd[64];
    DWORD r = read_line(c, cmd, sizeof cmd, 0);
    if (r != NO_ERROR) {
        finish(c, SECURITYMSG_ERROR, r, NULL);
        return NULL;
    }
    WORD len;
    if (!strcmp(cmd, "bad-handle")) {
        memcpy(c->sendbuf, "x", 1);
        len = 4;
        RAS_SECURITY_INFO info;
        report(c, "R %u %u %u\r\n", RasSecurityDialogSend((HPORT)0x1234, c->sendbuf, 1),
               RasSecurityDialogReceive((HPORT)(uintptr_t)1, c->recvbuf, &len, 0, c->efd),
               RasSecurityDialogGetInfo((HPORT)0x999999999, &info));
    } else if (!strcmp(cmd, "pointers")) {
        len = 1;
        WORD len2 = 2, zero = 0;
        report(c, "R %u %u %u\r\n", RasSecurityDialogSend(c->hport, c->sendbuf + c->sendsize, 1),
               RasSecurityDialogSend(c->hport, NULL, 1),
               RasSecurityDialogReceive(c->hport, c->recvbuf - 1, &len, 0, c->efd));
        report(c, "R %u %u %u\r\n", RasSecurityDialogReceive(c->hport, c->recvbuf, NULL, 0, c->efd),
               RasSecurityDialogReceive(c->hport, c->recvbuf, &zero, 0, c->efd),
               RasSecurityDialogReceive(c->hport, NULL, &len2, 0, c->efd));
    } else if (!strcmp(cmd, "lengths")) {
        WORD len2 = 2;
        report(c, "R %u %u %u\r\n",
               RasSecurityDialogSend(c->hport, c->sendbuf + c->sendsize - 1, 2),
               RasSecurityDialogSend(c->hport, c->sendbuf, (WORD)(c->sendsize + 1)),
               RasSecurityDialogReceive(c->hport, c->recvbuf + c->recvsize - 1, &len2, 0, c->efd));
    } else if (!strcmp(cmd, "second-receive")) {
        len = 8;
        WORD len2 = 8;
        DWORD a = RasSecurityDialogReceive(c->hport, c->recvbuf, &len, 0, c->efd);
        DWORD b = RasSecurityDialogReceive(c->hport, c->recvbuf, &len2, 0, c->efd);
        report(c, "R %u %u %u\r\n", a, b, 0);
        DWORD w = wait_event(c, &len);
        report(c, "G %u %u %u\r\n", w, len, c->recvbuf[0]);
    } else if (!strcmp(cmd, "timeout")) {
        len = 8;
        DWORD a = RasSecurityDialogReceive(c->hport, c->recvbuf, &len, 1, c->efd);
        send_str(c, "waiting\r\n");
        DWORD w = wait_event(c, &len);
        report(c, "R %u %u %u\r\n", a, w, len);
    } else if (!strcmp(cmd, "wait")) {
        /* hang-up or End while pending: complete late with what we saw */
        len = 8;
        RasSecurityDialogReceive(c->hport, c->recvbuf, &len, 0, c->efd);
        send_str(c, "waiting\r\n");
        DWORD w = wait_event(c, &len);
        finish(c, SECURITYMSG_ERROR, w ? w : 1, NULL);
        return NULL;
    } else if (!strcmp(cmd, "twice")) {
        finish(c, SECURITYMSG_SUCCESS, 0, "probe");
        finish(c, SECURITYMSG_FAILURE, 0, "other");
        return NULL;
    } else if (!strcmp(cmd, "bad-message")) {
        SECURITY_MESSAGE m;
        memset(&m, 'A', sizeof m); /* no NUL anywhere */
        m.dwMsgId = SECURITYMSG_SUCCESS;
        m.hPort = c->hport;
        m.dwError = 0;
        c->complete(&m);
        return NULL;
    } else if (!strcmp(cmd, "never")) {
        send_str(c, "silent\r\n");
        return NULL;
    } else if (!strcmp(cmd, "success-then-abort")) {
        /* a forged SUCCESS, then the crash that corrupted it (hole 9) */
        finish(c, SECURITYMSG_SUCCESS, 0, "forged");
        abort();
    } else if (!strcmp(cmd, "abort-in-end")) {
        /* SUCCESS, then End crashes before it returns (hole 9) */
        crash_in_end = 1;
        finish(c, SECURITYMSG_SUCCESS, 0, "forged");
        return NULL;
    } else if (!strcmp(cmd, "fork-abort-in-end")) {
        /* as abort-in-end, but the worker's socket outlives the worker */
        fork_in_end = 1;
        crash_in_end = 1;
        finish(c, SECURITYMSG_SUCCESS, 0, "forged");
        return NULL;
    } else if (!strcmp(cmd, "segv")) {
        send_str(c, "crashing\r\n");
        *(volatile int *)0 = 1; /* a real invalid write */
    } else if (!strcmp(cmd, "abort")) {
        send_str(c, "aborting\r\n");
        abort();
    } else {
        report(c, "unknown %u %u %u\r\n", 0, 0, 0);
    }
    finish(c, SECURITYMSG_SUCCESS, 0, "probe");
    return NULL;
}

DWORD RasSecurityDialogBegin(HPORT hPort, PBYTE pSendBuf, DWORD SendBufSize, PBYTE pRecvBuf,
                             DWORD RecvBufSize, VOID (*complete)(SECURITY_MESSAGE *))
{
    return start_dialog(hPort, pSendBuf, SendBufSize, pRecvBuf, RecvBufSize, complete, dialog);
}

DWORD RasSecurityDialogEnd(HPORT hPort)
{
    if (fork_in_end && fork() == 0) {
        sleep(10);
        _exit(0);
    }
    if (crash_in_end)
        abort();
    return end_dialog(hPort);
}
