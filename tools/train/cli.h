/* cli.h - what the onespike-train subcommands share: error reporting and small parsers. */
#ifndef ONESPIKE_CLI_H
#define ONESPIKE_CLI_H

#include <stdbool.h>

#include "onespike/model.h"
#include "onespike/parse.h"
#include "onespike/raster.h"
#include "onespike/status.h"

#define CLI_PROG "onespike-train"

/* Exit codes: 0 success, 1 a run that failed on its input, 2 bad usage. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Print "onespike-train: <what>: <detail or strerror>" to stderr. */
void cli_report(const char *what, os_status st);

/* Print "onespike-train <cmd>: <msg>" and a hint to run --help; returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The model's raster input (bands, scale) with --bands / --scale text applied over it (NULL:
 * kept). A bad text is a usage error of cmd: returns CLI_USAGE, else CLI_OK. */
int cli_raster_input(const char *cmd, const os_model *m, const char *bands, const char *scale,
                     os_raster_input *in);

/* Parse a ranged integer flag's argument into *v. A bad one is a usage error of cmd naming the
 * flag and the range ("--top-k \"0\": expected an integer in 1..100000"): returns false. */
bool cli_long(const char *cmd, const char *flag, const char *arg, long lo, long hi, long *v);

/* Parse --tta's argument: 1, 2, 4 or 8 views (os_session_run_views) into *views. A bad one is
 * a usage error of cmd: returns CLI_USAGE, else CLI_OK. */
int cli_views(const char *cmd, const char *arg, int *views);

/* Load path (weights: --weights, NULL for the default) into *m and its raster input with
 * --bands / --scale applied into *in. Returns CLI_OK, or CLI_FAIL / CLI_USAGE having reported
 * why (*m NULL). */
int cli_load_model(const char *cmd, const char *path, const char *weights, const char *bands,
                   const char *scale, os_model **m, os_raster_input *in);

int cmd_inspect(int argc, char **argv);
int cmd_classify(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_fit(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_stac(int argc, char **argv);

/* Write m's STAC MLM Item (cmd_stac.c) to out_path, atomically; NULL: beside the model,
 * model_path with .safetensors replaced by .stac.json. The path written goes to written (n
 * bytes) if not NULL. */
os_status cli_write_stac(const os_model *m, const char *model_path, const char *out_path,
                         char *written, size_t n);
int cmd_map(int argc, char **argv);

#endif
