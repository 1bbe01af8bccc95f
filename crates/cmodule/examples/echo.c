/* The benchmark's module: echoes every Receive back with a Send, until the
 * caller types 'q'; then completes SUCCESS "bench". */
#include "../../../examples/modules/dialog_util.h"

static void *dialog(void *arg)
{
    struct conv *c = arg;
    for (;;) {
        size_t got = 0;
        DWORD r = receive_some(c, 0, &got);
        if (r != NO_ERROR) {
            finish(c, SECURITYMSG_ERROR, r, NULL);
            return NULL;
        }
        if (c->recvbuf[0] == 'q')
            break;
        memcpy(c->sendbuf, c->recvbuf, got);
        if (RasSecurityDialogSend(c->hport, c->sendbuf, (WORD)got) != PENDING) {
            finish(c, SECURITYMSG_ERROR, 1, NULL);
            return NULL;
        }
    }
    finish(c, SECURITYMSG_SUCCESS, 0, "bench");
    return NULL;
}

DWORD RasSecurityDialogBegin(HPORT h, PBYTE s, DWORD sn, PBYTE r, DWORD rn,
                             VOID (*complete)(SECURITY_MESSAGE *))
{
    return start_dialog(h, s, sn, r, rn, complete, dialog);
}

DWORD RasSecurityDialogEnd(HPORT h) { return end_dialog(h); }
