/* A test module for issue 12, hole 10: its dialog thread completes SUCCESS
 * ("late") at once; End tells the thread to stop and returns without
 * joining it (as modules are told to). The thread then waits until the
 * host has let go of the handle (GetInfo says 601: End returned) and keeps
 * writing into both Begin buffers for a while, as a careless module would.
 * When done it creates $DIALGATE_LATEWRITE_DIR/late-<hPort in hex>. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../../../../include/rasshost.h"

struct late {
    HPORT h;
    PBYTE s, r;
    DWORD sn, rn;
    VOID (*complete)(SECURITY_MESSAGE *);
    int go[2];
    struct late *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct late *list;

static void *dialog(void *p)
{
    struct late *x = p;
    SECURITY_MESSAGE m;
    memset(&m, 0, sizeof m);
    m.dwMsgId = SECURITYMSG_SUCCESS;
    m.hPort = x->h;
    strcpy(m.UserName, "late");
    x->complete(&m);
    char c;
    while (read(x->go[0], &c, 1) < 0)
        ;
    RAS_SECURITY_INFO info;
    while (RasSecurityDialogGetInfo(x->h, &info) == NO_ERROR)
        usleep(200);
    /* End has returned: everything from here on is a late write. */
    for (int i = 0; i < 100; i++) {
        memset(x->s, 'L', x->sn);
        memset(x->r, 'L', x->rn);
        usleep(1000);
    }
    const char *dir = getenv("DIALGATE_LATEWRITE_DIR");
    if (dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/late-%lx", dir, (unsigned long)(uintptr_t)x->h);
        int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
    }
    close(x->go[0]);
    close(x->go[1]);
    free(x);
    return NULL;
}

DWORD RasSecurityDialogBegin(HPORT h, PBYTE s, DWORD sn, PBYTE r, DWORD rn,
                             VOID (*complete)(SECURITY_MESSAGE *))
{
    struct late *x = calloc(1, sizeof *x);
    if (!x)
        return 8;
    x->h = h;
    x->s = s;
    x->sn = sn;
    x->r = r;
    x->rn = rn;
    x->complete = complete;
    if (pipe(x->go) != 0) {
        free(x);
        return 8;
    }
    pthread_mutex_lock(&lock);
    x->next = list;
    list = x;
    pthread_mutex_unlock(&lock);
    pthread_t t;
    if (pthread_create(&t, NULL, dialog, x) != 0)
        return 8;
    pthread_detach(t);
    return NO_ERROR;
}

DWORD RasSecurityDialogEnd(HPORT h)
{
    pthread_mutex_lock(&lock);
    struct late **pp = &list, *x = NULL;
    while (*pp) {
        if ((*pp)->h == h) {
            x = *pp;
            *pp = x->next;
            break;
        }
        pp = &(*pp)->next;
    }
    pthread_mutex_unlock(&lock);
    if (x)
        (void)!write(x->go[1], "x", 1); /* stop, but not joined */
    return NO_ERROR;
}
