/* A test module whose Begin completes at once (SUCCESS "early"), from inside
 * Begin, and whose End completes again (a second Complete, ignored). */
#include <string.h>
#include "../../../../include/rasshost.h"

DWORD RasSecurityDialogBegin(HPORT hPort, PBYTE s, DWORD sn, PBYTE r, DWORD rn,
                             VOID (*complete)(SECURITY_MESSAGE *))
{
    (void)s; (void)sn; (void)r; (void)rn;
    SECURITY_MESSAGE m;
    memset(&m, 0, sizeof m);
    m.dwMsgId = SECURITYMSG_SUCCESS;
    m.hPort = hPort;
    strcpy(m.UserName, "early");
    complete(&m);
    return NO_ERROR;
}

DWORD RasSecurityDialogEnd(HPORT hPort)
{
    SECURITY_MESSAGE m;
    memset(&m, 0, sizeof m);
    m.dwMsgId = SECURITYMSG_ERROR;
    m.hPort = hPort;
    m.dwError = 5;
    RasSecurityDialogComplete(&m);
    return NO_ERROR;
}
