#include "onespike/status.h"

#include <stdarg.h>
#include <stdio.h>

enum { OS_DETAIL_MAX = 512 };

static _Thread_local char detail[OS_DETAIL_MAX];

static const char *const messages[OS_ECOUNT] = {
    [OS_OK] = "ok",
    [OS_ENOMEM] = "out of memory",
    [OS_EINVAL] = "invalid argument",
    [OS_EIO] = "input/output error",
    [OS_EFORMAT] = "malformed model file",
    [OS_ECHECKSUM] = "checksum mismatch",
    [OS_EDTYPE] = "unsupported dtype",
    [OS_ESHAPE] = "shape mismatch",
    [OS_EARCH] = "invalid architecture",
    [OS_EEMPTY] = "empty input",
    [OS_EUNSUPPORTED] = "unsupported input",
    [OS_ECORRUPT] = "corrupt data",
    [OS_ETOOBIG] = "input too large",
    [OS_EMISMATCH] = "input does not fit the model",
    [OS_ECANCELED] = "stopped before the end (cancelled or past its deadline)",
};

const char *os_strerror(os_status st)
{
    if ((unsigned)st >= OS_ECOUNT)
        return "unknown status";
    return messages[st];
}

os_status os_fail(os_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return st;
}

const char *os_errdetail(void)
{
    return detail;
}

void os_errclear(void)
{
    detail[0] = '\0';
}
