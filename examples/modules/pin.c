/*
 * pin.c -- a PIN security module.
 *
 * The dialog:
 *   User: alice
 *   PIN: 4711
 * up to 3 tries. The PINs are in the file named by the environment variable
 * DIALGATE_PIN_FILE (default /etc/dialgate/pins), read at every call, one
 * user per line:  NAME PIN   (# starts a comment). The comparison takes the
 * same time whatever the PIN's first wrong digit.
 *
 * Build: cc -shared -fPIC pin.c -o pin.so
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialog_util.h"

#define PROMPT_TIMEOUT 60 /* seconds per answer */
#define TRIES 3

/* 1 when the file names user with this pin, 0 when not, -1 when the file
 * cannot be read. */
static int pin_matches(const char *user, const char *pin)
{
    const char *path = getenv("DIALGATE_PIN_FILE");
    if (!path || !*path)
        path = "/etc/dialgate/pins";
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char line[512];
    int ok = 0;
    while (fgets(line, sizeof line, f)) {
        char *save = NULL;
        char *name = strtok_r(line, " \t\r\n", &save);
        char *p = strtok_r(NULL, " \t\r\n", &save);
        if (!name || !p || name[0] == '#')
            continue;
        if (strcmp(name, user) == 0 && secret_equal(p, pin))
            ok = 1;
    }
    fclose(f);
    return ok;
}

static void *dialog(void *arg)
{
    struct conv *c = arg;
    char user[UNLEN + 1], pin[64];
    DWORD r;
    for (int i = 0; i < TRIES; i++) {
        if ((r = send_str(c, i == 0 ? "User: " : "\r\nWrong. User: ")) != NO_ERROR ||
            (r = read_line(c, user, sizeof user, PROMPT_TIMEOUT)) != NO_ERROR ||
            (r = send_str(c, "PIN: ")) != NO_ERROR ||
            (r = read_line(c, pin, sizeof pin, PROMPT_TIMEOUT)) != NO_ERROR) {
            finish(c, SECURITYMSG_ERROR, r, NULL);
            return NULL;
        }
        int m = user[0] ? pin_matches(user, pin) : 0;
        memset(pin, 0, sizeof pin);
        if (m < 0) {
            send_str(c, "\r\nService unavailable.\r\n");
            finish(c, SECURITYMSG_ERROR, 2 /* ERROR_FILE_NOT_FOUND */, NULL);
            return NULL;
        }
        if (m == 1) {
            send_str(c, "\r\nWelcome.\r\n");
            finish(c, SECURITYMSG_SUCCESS, 0, user);
            return NULL;
        }
    }
    send_str(c, "\r\nAccess denied.\r\n");
    finish(c, SECURITYMSG_FAILURE, 0, user[0] ? user : "(none)");
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
