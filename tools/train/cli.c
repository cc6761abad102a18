#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void cli_report(const char *what, os_status st)
{
    const char *d = os_errdetail();
    fprintf(stderr, "%s: %s: %s\n", CLI_PROG, what, *d ? d : os_strerror(st));
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s %s: ", CLI_PROG, cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see '%s %s --help')\n", CLI_PROG, cmd);
    return CLI_USAGE;
}
