/* A test module that only tells the test where its Begin buffers are: it
 * sends {send, send size, recv, recv size} as four native 64-bit words. */
#include <stdint.h>
#include <string.h>
#include "../../../../include/rasshost.h"

DWORD RasSecurityDialogBegin(HPORT h, PBYTE s, DWORD sn, PBYTE r, DWORD rn,
                             VOID (*complete)(SECURITY_MESSAGE *))
{
    (void)complete;
    uint64_t w[4] = {(uint64_t)(uintptr_t)s, sn, (uint64_t)(uintptr_t)r, rn};
    if (sn < sizeof w)
        return 1;
    memcpy(s, w, sizeof w);
    return RasSecurityDialogSend(h, s, sizeof w) == PENDING ? NO_ERROR : 2;
}

DWORD RasSecurityDialogEnd(HPORT h) { (void)h; return NO_ERROR; }
