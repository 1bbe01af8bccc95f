/*
 * rasshost.h -- dialgate's security host interface for C security modules.
 *
 * A security module holds a plain-text dialog with a caller before PPP
 * starts; its verdict decides whether the call goes on. The interface is the
 * one of Windows RAS "third-party security hosts" (rasshost.h), with the
 * Linux choices of dialgate's spec, section 6:
 *   - DWORD = uint32_t, WORD = uint16_t, BYTE = uint8_t, CHAR = char holding
 *     UTF-8, NUL-terminated;
 *   - HPORT is an opaque pointer-sized handle, never NULL, checked by the
 *     host on every call (a stale or unknown one gets 601);
 *   - the event of RasSecurityDialogReceive is an eventfd(2) descriptor made
 *     by the module (an int, not a HANDLE): the host adds 1 to it when the
 *     Receive completes; wait for it with poll(2) or read(2);
 *   - the platform C calling convention, unmangled names.
 *
 * A module is a shared object exporting RasSecurityDialogBegin and
 * RasSecurityDialogEnd, built with plain
 *     cc -shared -fPIC module.c -o module.so
 * The four host functions below are found in the dialgate process when the
 * module is loaded (undefined symbols resolved at load time). A module may
 * also look them up with dlsym(RTLD_DEFAULT, "RasSecurityDialogSend"), the
 * way Windows modules use GetProcAddress.
 *
 * dialgate runs modules in a separate worker process: a module that crashes
 * or hangs ends its own callers' dialogs (logged as module defects), never
 * the server.
 */
#ifndef DIALGATE_RASSHOST_H
#define DIALGATE_RASSHOST_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint32_t DWORD;
typedef uint16_t WORD;
typedef uint8_t BYTE;
typedef char CHAR;
typedef void VOID;
typedef BYTE *PBYTE;
typedef WORD *PWORD;
/* The port handle of one transaction (one caller's dialog). */
typedef void *HPORT;

/* ---- Verdicts: SECURITY_MESSAGE.dwMsgId ------------------------------- */
#define SECURITYMSG_SUCCESS 1 /* grant: PPP authentication proceeds */
#define SECURITYMSG_FAILURE 2 /* deny: hang up, log failed authentication */
#define SECURITYMSG_ERROR   3 /* could not validate: hang up, log dwError */

/* ---- Return codes (Windows numbers, kept so modules compare them) ------ */
#define NO_ERROR                    0   /* done */
#define PENDING                     600 /* success of Send and Receive */
#define ERROR_INVALID_PARAMETER     87  /* pointer outside the Begin buffers, NULL pointer, zero length */
#define ERROR_INVALID_PORT_HANDLE   601 /* unknown or stale hPort */
#define ERROR_BUFFER_TOO_SMALL      603 /* a length runs past the end of its buffer */
#define ERROR_ASYNC_REQUEST_PENDING 616 /* Receive while one is pending */
#define ERROR_PORT_DISCONNECTED     619 /* the caller hung up */
#define ERROR_REQUEST_TIMEOUT       638 /* Receive timed out */

/* ---- Sizes ------------------------------------------------------------- */
#define UNLEN           256 /* longest user name, without its NUL */
#define DNLEN           15  /* longest domain, without its NUL */
#define MAX_DEVICE_NAME 128 /* longest device name, without its NUL */

/*
 * The verdict a module passes to RasSecurityDialogComplete.
 * 296 bytes on x86-64 and aarch64 (LP64).
 */
typedef struct _SECURITY_MESSAGE {
    DWORD dwMsgId;             /* SECURITYMSG_* */
    HPORT hPort;               /* the handle given to Begin */
    DWORD dwError;             /* non-zero only with SECURITYMSG_ERROR */
    CHAR  UserName[UNLEN + 1]; /* required (non-empty) for SUCCESS and FAILURE */
    CHAR  Domain[DNLEN + 1];   /* may be empty; NUL-terminated */
} SECURITY_MESSAGE, *PSECURITY_MESSAGE;

/*
 * What RasSecurityDialogGetInfo fills in. 140 bytes.
 */
typedef struct _RAS_SECURITY_INFO {
    DWORD LastError;     /* 0 = last Receive done, 600 = still pending, else its error (638, 619) */
    DWORD BytesReceived; /* bytes the last Receive delivered; valid when LastError == 0 */
    CHAR  DeviceName[MAX_DEVICE_NAME + 1]; /* e.g. "tcp 198.51.100.7:50412", "/dev/ttyS0" */
} RAS_SECURITY_INFO, *PRAS_SECURITY_INFO;

/* ======================================================================
 * Exported by the module
 * ====================================================================== */

/*
 * Called once per caller. pSendBuf/pRecvBuf are the host's buffers for this
 * transaction (valid until RasSecurityDialogEnd returned); Send and Receive
 * only accept pointers inside them. Return quickly: copy what you need and
 * run the dialog on a thread of your own. Return NO_ERROR to start the
 * dialog (you must then call RasSecurityDialogComplete), anything else to
 * refuse the call (the caller is hung up, the code logged, no Complete
 * expected).
 *
 * The last parameter is the host's RasSecurityDialogComplete. Windows
 * declares it VOID-returning, and so does this header.
 */
DWORD RasSecurityDialogBegin(HPORT hPort, PBYTE pSendBuf, DWORD SendBufSize,
                             PBYTE pRecvBuf, DWORD RecvBufSize,
                             VOID (*RasSecurityDialogComplete)(SECURITY_MESSAGE *));

/*
 * Release the port: after your Complete (cleanup), or to abort a dialog
 * (caller hung up, dialog time limit, shutdown, or a module defect the host
 * found). When aborting, a non-zero return ends the transaction at once;
 * NO_ERROR lets you still call Complete within the host's grace period (the
 * logged outcome is the abort's cause either way). Once End returned, the
 * host no longer touches your Receive's buffer, length or event.
 *
 * End must return: a SUCCESS stands only once End has returned after it.
 * If your process dies (or End hangs past the grace period) between your
 * Complete and End's return, the verdict does not stand: the caller is hung
 * up and a module defect recorded. After End returned the host keeps
 * pSendBuf/pRecvBuf mapped, unused, for a while (60 s, less when many
 * callers end at once), so a dialog thread told to stop but not yet
 * finished does not corrupt memory; after that their addresses stay
 * reserved but inaccessible, and a late access crashes your process (every
 * caller it serves is hung up). Do not rely on any of it: stop touching
 * them before End returns.
 */
DWORD RasSecurityDialogEnd(HPORT hPort);

/* ======================================================================
 * Provided by the host (dialgate)
 * ====================================================================== */

/*
 * Sends BufferLength bytes at pBuffer to the caller. pBuffer must lie inside
 * the send buffer given to Begin (87 otherwise) with all its bytes (603
 * otherwise). The bytes are copied before the call returns PENDING; a write
 * error shows on the next Receive or GetInfo.
 * Returns PENDING, 601, 619, 87 or 603.
 */
DWORD RasSecurityDialogSend(HPORT hPort, PBYTE pBuffer, WORD BufferLength);

/*
 * Asks for the caller's next bytes. On input *pBufferLength is the room at
 * pBuffer, which must lie inside the receive buffer given to Begin (87 when
 * outside, NULL or zero; 603 when the room runs past its end). Returns
 * PENDING, then later writes at least one byte at pBuffer, the count into
 * *pBufferLength, and adds 1 to the eventfd hEvent. Bytes that do not fit
 * stay queued for the next Receive. Timeout is in seconds, 0 = none; on
 * timeout *pBufferLength = 0 and GetInfo's LastError is 638. If the caller
 * hangs up meanwhile: *pBufferLength = 0, LastError 619, event signalled;
 * End follows. Keep pBufferLength and hEvent valid until the event fired or
 * End/Complete returned. An hEvent that is not an eventfd gets 87 and is
 * also a module defect: the dialog ends at once (the host could never
 * signal it).
 * Returns PENDING, 601, 619, 616 (a Receive is pending), 87 or 603.
 */
DWORD RasSecurityDialogReceive(HPORT hPort, PBYTE pBuffer, PWORD pBufferLength,
                               DWORD Timeout, int hEvent);

/*
 * The state of the last Receive and the device name. Returns NO_ERROR, 601,
 * or 87 for a NULL pBuffer.
 */
DWORD RasSecurityDialogGetInfo(HPORT hPort, RAS_SECURITY_INFO *pBuffer);

/*
 * The verdict. Callable from any thread, also from inside Begin or End. The
 * host copies and checks the message: an unknown dwMsgId, a wrong hPort,
 * SUCCESS/FAILURE with an empty UserName or a non-zero dwError, ERROR with
 * dwError 0, or a string without its NUL is a module defect (the caller is
 * hung up, never granted). A second Complete is ignored and logged.
 * Returns nothing, as on Windows.
 *
 * Inside Begin or End the host knows the transaction from the calling
 * thread: a NULL pSecMsg, or an hPort that is not that call's, is a defect
 * of that transaction. From any other thread the host goes by hPort alone:
 * a NULL pSecMsg or an hPort naming no live transaction is logged as an
 * error, and cannot end any dialog; and a module that keeps one handle in a
 * global and completes another caller's dialog with it cannot be caught.
 * Keep each dialog's hPort with that dialog.
 */
VOID RasSecurityDialogComplete(SECURITY_MESSAGE *pSecMsg);

#ifdef __cplusplus
}
#endif

#endif /* DIALGATE_RASSHOST_H */
