/* A test module whose Begin refuses every call with 1234. */
#include "../../../../include/rasshost.h"
DWORD RasSecurityDialogBegin(HPORT h, PBYTE s, DWORD sn, PBYTE r, DWORD rn,
                             VOID (*complete)(SECURITY_MESSAGE *))
{
    (void)h; (void)s; (void)sn; (void)r; (void)rn; (void)complete;
    return 1234;
}
DWORD RasSecurityDialogEnd(HPORT h) { (void)h; return NO_ERROR; }
