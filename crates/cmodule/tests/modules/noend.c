/* A test module that forgot RasSecurityDialogEnd. */
#include "../../../../include/rasshost.h"
DWORD RasSecurityDialogBegin(HPORT h, PBYTE s, DWORD sn, PBYTE r, DWORD rn,
                             VOID (*complete)(SECURITY_MESSAGE *))
{
    (void)h; (void)s; (void)sn; (void)r; (void)rn; (void)complete;
    return NO_ERROR;
}
