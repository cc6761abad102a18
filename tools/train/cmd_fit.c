/* fit: flags (the table in fit_flags.h) -> fit_config -> fit_run. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "onespike/fit.h"
#include "onespike/fit_flags.h"

/* Column of the help text after "  --flag ARG". */
enum { HELP_COL = 24 };

static void help(void)
{
    printf(
        "usage: " CLI_PROG " fit --data DIR --out MODEL [options]\n"
        "\n"
        "Train a one-time-step spiking network on DIR (one subfolder of JPEGs per class; sorted\n"
        "names are the label order): ANN with Units -> BN folding and conversion to LIF ->\n"
        "SNN at T0 steps -> temporal pruning T0, T0-1, ..., 1 -> Unit removal -> fine-tune at\n"
        "T = 1 -> MODEL (written atomically) with MODEL.report.md/.json beside it. A checkpoint\n"
        "is written to the work dir after every epoch; --resume continues a killed run.\n"
        "The defaults are the recipe of the shipped model (models/ucm-msresnet18-t1.md), so\n"
        "--data and --out alone train it again.\n");
    size_t n;
    const fit_flag *t = fit_flags(&n);
    fit_config d;
    fit_defaults(&d);
    for (size_t i = 0; i < n; i++) {
        const fit_flag *f = &t[i];
        if (f->section)
            printf("%s%s\n", i ? "" : "\n", f->section);
        char left[64], def[96] = "";
        snprintf(left, sizeof left, "--%s%s%s", f->name, f->metavar ? " " : "",
                 f->metavar ? f->metavar : "");
        if (f->def_help && *f->def_help) {
            snprintf(def, sizeof def, " (default %s)", f->def_help);
        } else if (!f->def_help) {
            char v[64];
            fit_flag_format(f, &d, v, sizeof v);
            snprintf(def, sizeof def, " (default %s)", v);
        }
        printf("  %-*s", HELP_COL - 2, left);
        for (const char *line = f->help;;) { /* continuation lines under the first */
            const char *nl = strchr(line, '\n');
            if (!nl) {
                printf("%s%s\n", line, def);
                break;
            }
            printf("%.*s\n%*s", (int)(nl - line), line, HELP_COL, "");
            line = nl + 1;
        }
    }
    printf("  %-*s%s\n", HELP_COL - 2, "--print-config",
           "print the config JSON these flags give (as the checkpoint and the\n"
           "                        model file record it) and exit; --data and --out not needed");
    printf("  %-*s%s\n", HELP_COL - 2, "--help", "this text");
}

static char *join_args(int argc, char **argv)
{
    size_t len = strlen(CLI_PROG) + 8;
    for (int i = 0; i < argc; i++)
        len += strlen(argv[i]) + 1;
    char *s = malloc(len);
    if (!s)
        return NULL;
    strcpy(s, CLI_PROG);
    for (int i = 0; i < argc; i++)
        strcat(strcat(s, " "), argv[i]);
    return s;
}

/* getopt values: a flag of the table is O_TABLE + its row; the two actions come after. */
enum { O_TABLE = 1000, O_PRINT_CONFIG = 900, O_HELP };

int cmd_fit(int argc, char **argv)
{
    size_t n;
    const fit_flag *t = fit_flags(&n);
    struct option *opts = calloc(n + 3, sizeof *opts);
    if (!opts) {
        cli_report("fit", os_fail(OS_ENOMEM, "no memory"));
        return CLI_FAIL;
    }
    for (size_t i = 0; i < n; i++)
        opts[i] =
            (struct option){t[i].name, t[i].type == FIT_FLAG_BOOL ? no_argument : required_argument,
                            NULL, O_TABLE + (int)i};
    opts[n] = (struct option){"print-config", no_argument, NULL, O_PRINT_CONFIG};
    opts[n + 1] = (struct option){"help", no_argument, NULL, O_HELP};
    fit_config c;
    fit_defaults(&c);
    bool print_config = false, fade_given = false;
    int rc = CLI_OK, ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == O_HELP) {
            help();
            goto out;
        } else if (ch == O_PRINT_CONFIG) {
            print_config = true;
        } else if (ch >= O_TABLE && ch < O_TABLE + (int)n) {
            fade_given |= &t[ch - O_TABLE] == fit_flag_find("unit-fade");
            if (fit_flag_set(&t[ch - O_TABLE], &c, optarg)) {
                rc = cli_usage_error("fit", "%s", os_errdetail());
                goto out;
            }
        } else {
            rc = cli_usage_error("fit", "unknown option");
            goto out;
        }
    }
    if (optind != argc) {
        rc = cli_usage_error("fit", "unexpected argument \"%s\"", argv[optind]);
        goto out;
    }
    if (!print_config && (!c.data || !c.out)) {
        rc = cli_usage_error("fit", "--data and --out are required");
        goto out;
    }
    /* --unit-fade 1 where there is nothing residual to fade: asked for, an error (check); the
     * default, 0 (expand) and a note where there are Units */
    const bool fade_asked = c.unit_fade && c.units > 0 && !c.snn_from && !c.transfer_from;
    if (fit_config_expand(&c, fade_given) || fit_config_check(&c)) {
        rc = cli_usage_error("fit", "%s", os_errdetail());
        goto out;
    }
    if (fade_asked && !c.unit_fade && !c.quiet)
        fprintf(stderr, "onespike-train fit: note: the Units are removed at once after T = 1 "
                        "(--unit-fade fades an msresnet's residual Units, over SNN epochs)\n");
    if (print_config) {
        json_t *j = fit_config_json(&c);
        /* 15 digits: the decimal a user typed (5e-4, not 0.00050000000000000001); reads back as
         * the same double. */
        if (!j || json_dumpf(j, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(15)) != 0) {
            cli_report("fit", os_fail(OS_ENOMEM, "cannot print the config"));
            rc = CLI_FAIL;
        } else {
            putchar('\n');
        }
        json_decref(j);
        goto out;
    }
    if (!c.snn_from && c.units > 0 && c.epochs_finetune == 0)
        fprintf(stderr,
                "%s fit: note: Units are removed without fine-tuning (--epochs-finetune 0)\n",
                CLI_PROG);
    c.command = join_args(argc, argv); /* argv[0] is "fit" */
    os_status st = fit_run(&c);
    free(c.command);
    if (!st) { /* the model's input and output for catalogues, beside it (STAC MLM) */
        os_model *m = NULL;
        if (!(st = os_model_load(c.out, &m)))
            st = cli_write_stac(m, c.out, NULL, NULL, 0);
        os_model_destroy(m);
    }
    if (st) {
        cli_report("fit", st);
        rc = CLI_FAIL;
    }
out:
    free(opts);
    return rc;
}
