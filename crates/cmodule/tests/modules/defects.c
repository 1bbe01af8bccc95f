/* A test module for issue 12, hole 8: built once per misuse with
 * -DDEFECT=n, it breaks the contract in a way no return code can tell it
 * about, and the worker must report that as a defect of its transaction:
 *   1  Complete(NULL), inside Begin
 *   2  Complete naming a handle no transaction has, inside Begin
 *   3  Receive with an hEvent that is not an eventfd (a pipe), from its
 *      dialog thread, with its own valid handle
 *   4  Complete(NULL) from its dialog thread: nothing to attribute it to
 *      (the server logs it); then a line on stderr and a FAILURE verdict
 *   5  Complete(NULL) inside Begin while its dialog thread waits on a
 *      pending Receive: that Receive must complete (619) so the thread
 *      wakes and End, which joins it, returns
 * End wakes and joins the dialog thread, if there is one. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <string.h>
#include <unistd.h>
#include "../../../../include/rasshost.h"

#ifndef DEFECT
#error "build with -DDEFECT=1..5"
#endif

static VOID (*complete_fn)(SECURITY_MESSAGE *);
static pthread_t thread;
static int have_thread;
static int stop[2] = {-1, -1};
static int ready[2] = {-1, -1};

struct args {
    HPORT h;
    PBYTE recv;
};
static struct args a;

static void *dialog(void *p)
{
    struct args *x = p;
    char c;
#if DEFECT == 3
    WORD len = 8;
    DWORD r = RasSecurityDialogReceive(x->h, x->recv, &len, 0, stop[0]);
    fprintf(stderr, "defects: Receive with a pipe as hEvent returned %u\n", r);
#elif DEFECT == 4
    complete_fn(NULL);
    fprintf(stderr, "defects: completed NULL from the dialog thread\n");
    SECURITY_MESSAGE m;
    memset(&m, 0, sizeof m);
    m.dwMsgId = SECURITYMSG_FAILURE;
    m.hPort = x->h;
    strcpy(m.UserName, "nobody");
    complete_fn(&m);
#elif DEFECT == 5
    WORD len = 8;
    int efd = eventfd(0, 0);
    DWORD r = RasSecurityDialogReceive(x->h, x->recv, &len, 0, efd);
    (void)!write(ready[1], "r", 1);
    uint64_t v;
    if (r == PENDING)
        while (read(efd, &v, sizeof v) < 0)
            ;
    fprintf(stderr, "defects5: the pending Receive (%u) ended with length %u\n", r, len);
    close(efd);
#endif
    /* Until End says stop. */
    while (read(stop[0], &c, 1) < 0)
        ;
    return NULL;
}

DWORD RasSecurityDialogBegin(HPORT hPort, PBYTE s, DWORD sn, PBYTE r, DWORD rn,
                             VOID (*complete)(SECURITY_MESSAGE *))
{
    (void)s; (void)sn; (void)rn;
    complete_fn = complete;
#if DEFECT == 1
    (void)r;
    complete(NULL);
#elif DEFECT == 2
    (void)r;
    SECURITY_MESSAGE m;
    memset(&m, 0, sizeof m);
    m.dwMsgId = SECURITYMSG_SUCCESS;
    m.hPort = (HPORT)(uintptr_t)0x1234;
    strcpy(m.UserName, "bogus");
    complete(&m);
#else
    if (pipe(stop) != 0 || pipe(ready) != 0)
        return 1;
    a.h = hPort;
    a.recv = r;
    if (pthread_create(&thread, NULL, dialog, &a) != 0)
        return 2;
    have_thread = 1;
#if DEFECT == 5
    char c;
    while (read(ready[0], &c, 1) < 0)
        ;
    complete(NULL);
#endif
#endif
    return NO_ERROR;
}

DWORD RasSecurityDialogEnd(HPORT hPort)
{
    (void)hPort;
    fprintf(stderr, "defects%d: End called\n", DEFECT);
    if (have_thread) {
        (void)!write(stop[1], "x", 1);
        pthread_join(thread, NULL);
        have_thread = 0;
        close(stop[0]);
        close(stop[1]);
        close(ready[0]);
        close(ready[1]);
        fprintf(stderr, "defects%d: End returned\n", DEFECT);
    }
    return 1; /* "I stopped my dialog" */
}
