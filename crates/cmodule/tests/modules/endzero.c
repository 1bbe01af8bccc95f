/* A test module: Begin starts nothing and returns 0; End returns 0 ("I
 * will complete later") and never completes. Each caller who hangs up
 * leaves a handle waiting for a late Complete that never comes. */
#include "../../../../include/rasshost.h"

DWORD RasSecurityDialogBegin(HPORT hPort, PBYTE s, DWORD sn, PBYTE r, DWORD rn,
                             VOID (*complete)(SECURITY_MESSAGE *))
{
    (void)hPort; (void)s; (void)sn; (void)r; (void)rn; (void)complete;
    return NO_ERROR;
}

DWORD RasSecurityDialogEnd(HPORT hPort)
{
    (void)hPort;
    return NO_ERROR;
}
