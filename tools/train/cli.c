#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "onespike/session.h"

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

int cli_raster_input(const char *cmd, const os_model *m, const char *bands, const char *scale,
                     os_raster_input *in)
{
    *in = *os_model_raster_input(m);
    if ((bands && os_raster_bands_parse(bands, in)) || (scale && os_raster_scale_parse(scale, in)))
        return cli_usage_error(cmd, "%s", os_errdetail());
    return CLI_OK;
}

bool cli_long(const char *cmd, const char *flag, const char *arg, long lo, long hi, long *v)
{
    if (os_parse_long(arg, lo, hi, v))
        return true;
    cli_usage_error(cmd, "%s \"%s\": expected an integer in %ld..%ld", flag, arg, lo, hi);
    return false;
}

int cli_views(const char *cmd, const char *arg, int *views)
{
    long v;
    if (!os_parse_long(arg, 1, OS_SESSION_MAX_VIEWS, &v) || !os_session_views_valid((int)v))
        return cli_usage_error(cmd, "--tta \"%s\": expected 1, 2, 4 or 8 views", arg);
    *views = (int)v;
    return CLI_OK;
}

int cli_load_model(const char *cmd, const char *path, const char *weights, const char *bands,
                   const char *scale, os_model **m, os_raster_input *in)
{
    const os_model_opts mo = {.weights = weights};
    os_status st = os_model_load_ex(path, &mo, m);
    if (st) {
        cli_report("cannot load model", st);
        return CLI_FAIL;
    }
    int rc = cli_raster_input(cmd, *m, bands, scale, in);
    if (rc != CLI_OK) {
        os_model_destroy(*m);
        *m = NULL;
    }
    return rc;
}
