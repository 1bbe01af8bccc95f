/* A test module whose Begin never returns (an endless loop). */
#include "../../../../include/rasshost.h"
DWORD RasSecurityDialogBegin(HPORT h, PBYTE s, DWORD sn, PBYTE r, DWORD rn,
                             VOID (*complete)(SECURITY_MESSAGE *))
{
    (void)h; (void)s; (void)sn; (void)r; (void)rn; (void)complete;
    for (volatile int i = 0;; i++)
        ;
    return NO_ERROR;
}
DWORD RasSecurityDialogEnd(HPORT h) { (void)h; return NO_ERROR; }
