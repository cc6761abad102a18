/* fit_flags.h - the one table of `onespike-train fit`'s flags.
 *
 * Each row says everything about one setting of fit_config: its flag, argument, type, default,
 * valid range, help line and key in the config JSON. The table drives fit_defaults, the CLI's
 * parsing and --help, fit_config_json (checkpoints, model files, reports; a resume compares it)
 * and the report's configuration section, so a new flag is one new row (and its field).
 *
 * The defaults are the recipe of the shipped model (models/ucm-msresnet18-t1.safetensors records
 * the config it was trained with; tests/train/test_fit.sh fails if they drift apart), so
 * `onespike-train fit --data DIR --out MODEL` trains it again. The one exception on purpose:
 * --val-fraction keeps a validation split by default; the shipped file was retrained with
 * --val-fraction 0 on every image once its recipe had been measured with the split.
 */
#ifndef ONESPIKE_FIT_FLAGS_H
#define ONESPIKE_FIT_FLAGS_H

#include <stdbool.h>
#include <stddef.h>

#include "onespike/fit.h"
#include "onespike/raster.h"
#include "onespike/status.h"

typedef enum {
    FIT_FLAG_STRING, /* const char *, borrowed from the argument; NULL = not given */
    FIT_FLAG_CHOICE, /* const char *, one of the row's choices (points into the table) */
    FIT_FLAG_BOOL,   /* bool, a flag without argument */
    FIT_FLAG_INT,    /* int in [min, max] */
    FIT_FLAG_DOUBLE, /* double in [min, max] */
    FIT_FLAG_SEED,   /* uint64_t in [0, 2^62] */
} fit_flag_type;

/* One row. Read-only: the table is static data. */
typedef struct {
    const char *name;    /* the flag without "--": "epochs-ann" */
    const char *metavar; /* its argument in --help ("N"); NULL for a BOOL */
    fit_flag_type type;
    size_t offset;       /* of the field in fit_config */
    const char *key;     /* key in the config JSON; NULL: not part of the recipe (paths of this
                          * run's outputs, threads, output switches) */
    double def;          /* default of an INT, DOUBLE or SEED (BOOL: false) */
    const char *def_str; /* default of a STRING or CHOICE (NULL: unset) */
    double min, max;     /* INT and DOUBLE: the valid range */
    const char *const *choices; /* CHOICE: NULL-terminated */
    const char *section;        /* --help heading this row opens; NULL: the previous row's */
    const char *help;           /* --help text; "\n" continues it on the next line */
    const char *def_help; /* --help's "(default ...)" text if not the value itself; "" for none */
    bool omit_default;    /* the config JSON holds the key only when the value is not the
                           * default (flags added after configs were first recorded: a model
                           * file or checkpoint without the key read as the default) */
    bool omit_zero;       /* INT: the key only when the value is not 0 (a flag whose default
                           * changed after configs without the key were recorded: they read as
                           * 0, whatever today's default) */
} fit_flag;

/* The table, in --help order; *n gets its length. */
const fit_flag *fit_flags(size_t *n);

/* The row of flag `name` (without "--"), or NULL. */
const fit_flag *fit_flag_find(const char *name);

/* Set f's field of c from the flag's argument (NULL for a BOOL). A STRING keeps the pointer:
 * arg must outlive c. Bad input: OS_EINVAL, c untouched, and a detail naming the flag and what
 * it expects ("--batch \"x\": expected an integer in 1..4096"). */
os_status fit_flag_set(const fit_flag *f, fit_config *c, const char *arg);

/* f's value in c as --help and the report print it: "96", "0.0005", "msresnet18"; "-" for an
 * unset STRING. Truncated to n bytes (with the terminator). */
void fit_flag_format(const fit_flag *f, const fit_config *c, char *buf, size_t n);

/* Whether f's value in c is its default. */
bool fit_flag_is_default(const fit_flag *f, const fit_config *c);

/* Expand shorthands once every flag is parsed: --transfer-from M sets --snn-from M --new-head
 * --distill 0. OS_EINVAL if --snn-from is given too. Unless fade_given (--unit-fade was on the
 * command line: kept, so fit_config_check refuses a 1 that cannot apply), --unit-fade's default
 * 1 becomes 0 where it cannot apply (fit_unit_fade_applies). */
os_status fit_config_expand(fit_config *c, bool fade_given);

/* What a config without key reads as (a model file or checkpoint from before the flag, or one
 * that omits it: 0 for an omit_zero flag, else the default); new JSON value, NULL for an
 * unknown key. */
json_t *fit_config_absent(const char *key);

/* Whether --unit-fade has something to fade: residual Units (--units > 0, an msresnet) and SNN
 * epochs of the run's own (no --snn-from). */
bool fit_unit_fade_applies(const fit_config *c);

/* The rules between flags, once every flag is parsed and expanded (the table checks each flag
 * alone): --unit-fade 1 only where it applies; --val-list needs --train-list; --snn-from needs --epochs-finetune > 0, and with
 * --distill the teacher (--ann-from); --folds and --fold come together (1 <= fold <= folds) and
 * not with --train-list; --freeze-stages only with --snn-from. OS_EINVAL with the rule in the
 * detail. */
os_status fit_config_check(const fit_config *c);

/* How the run reads rasters: --bands and --scale parsed (the defaults where not given: bands
 * 1,2,3, no scaling). OS_EINVAL naming the flag if one does not parse. */
os_status fit_config_raster(const fit_config *c, os_raster_input *in);

#endif
