/* config.c - flags, ONESPIKE_* environment variables and defaults (see config.h). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "onespike/parse.h"
#include "onespike/session.h"

enum {
    OPT_LISTEN = 256,
    OPT_PORT,
    OPT_MODEL,
    OPT_WORKERS,
    OPT_QUEUE,
    OPT_MAX_BODY,
    OPT_MAX_PIXELS,
    OPT_DEADLINE_MS,
    OPT_DRAIN_MS,
    OPT_DRAIN_RUNNING_MS,
    OPT_CONN_TIMEOUT,
    OPT_MAX_CONNS,
    OPT_HEADER_TIMEOUT,
    OPT_BODY_TIMEOUT,
    OPT_BODY_BUDGET,
    OPT_MAP_MAX_BODY,
    OPT_MAP_TIMEOUT,
    OPT_MAX_BATCH,
    OPT_BATCH_DELAY,
    OPT_IDLE_SPIN,
    OPT_ANSWER_SPIN,
    OPT_TTA,
    OPT_LOG_LEVEL,
    OPT_TOKEN_FILE,
    OPT_PROBE,
    OPT_HELP,
    OPT_VERSION,
};

/* One row per setting: the flag, its environment twin (NULL: flag only). */
typedef struct {
    const char *flag;
    const char *env;
    int id;
    bool has_arg;
} opt_def;

static const opt_def opt_defs[] = {
    {"listen", "ONESPIKE_LISTEN", OPT_LISTEN, true},
    {"port", "ONESPIKE_PORT", OPT_PORT, true},
    {"model", "ONESPIKE_MODEL", OPT_MODEL, true},
    {"workers", "ONESPIKE_WORKERS", OPT_WORKERS, true},
    {"queue", "ONESPIKE_QUEUE", OPT_QUEUE, true},
    {"max-body", "ONESPIKE_MAX_BODY", OPT_MAX_BODY, true},
    {"max-pixels", "ONESPIKE_MAX_PIXELS", OPT_MAX_PIXELS, true},
    {"deadline-ms", "ONESPIKE_DEADLINE_MS", OPT_DEADLINE_MS, true},
    {"drain-ms", "ONESPIKE_DRAIN_MS", OPT_DRAIN_MS, true},
    {"drain-running-ms", "ONESPIKE_DRAIN_RUNNING_MS", OPT_DRAIN_RUNNING_MS, true},
    {"conn-timeout", "ONESPIKE_CONN_TIMEOUT", OPT_CONN_TIMEOUT, true},
    {"max-conns", "ONESPIKE_MAX_CONNS", OPT_MAX_CONNS, true},
    {"header-timeout", "ONESPIKE_HEADER_TIMEOUT", OPT_HEADER_TIMEOUT, true},
    {"body-timeout", "ONESPIKE_BODY_TIMEOUT", OPT_BODY_TIMEOUT, true},
    {"body-budget", "ONESPIKE_BODY_BUDGET", OPT_BODY_BUDGET, true},
    {"map-max-body", "ONESPIKE_MAP_MAX_BODY", OPT_MAP_MAX_BODY, true},
    {"map-timeout", "ONESPIKE_MAP_TIMEOUT", OPT_MAP_TIMEOUT, true},
    {"max-batch", "ONESPIKE_MAX_BATCH", OPT_MAX_BATCH, true},
    {"batch-delay-us", "ONESPIKE_BATCH_DELAY_US", OPT_BATCH_DELAY, true},
    {"idle-spin-us", "ONESPIKE_IDLE_SPIN_US", OPT_IDLE_SPIN, true},
    {"answer-spin-us", "ONESPIKE_ANSWER_SPIN_US", OPT_ANSWER_SPIN, true},
    {"tta", "ONESPIKE_TTA", OPT_TTA, true},
    {"log-level", "ONESPIKE_LOG_LEVEL", OPT_LOG_LEVEL, true},
    {"token-file", "ONESPIKE_TOKEN_FILE", OPT_TOKEN_FILE, true},
    {"probe", NULL, OPT_PROBE, true},
    {"help", NULL, OPT_HELP, false},
    {"version", NULL, OPT_VERSION, false},
};
#define N_OPTS (sizeof opt_defs / sizeof opt_defs[0])

void srv_config_print_help(FILE *f)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    fprintf(
        f,
        "usage: " SRV_PROG " --model NAME=PATH [--model NAME=PATH ...] [options]\n"
        "       " SRV_PROG " --probe http://127.0.0.1:PORT/v2/health/ready\n"
        "\n"
        "Serve onespike models over HTTP (Open Inference Protocol v2 paths plus a plain\n"
        "image route). Every option can also be set by the environment variable shown;\n"
        "a flag on the command line wins over the environment.\n"
        "\n"
        "  --model NAME=PATH   model to serve (repeatable, up to %d); a model that cannot\n"
        "                      be loaded stops start-up (exit 1)\n"
        "                      env ONESPIKE_MODEL=NAME=PATH[,NAME=PATH...] (only without --model)\n"
        "  --listen ADDR       address to listen on (default %s)\n"
        "                      env ONESPIKE_LISTEN\n"
        "  --port N            TCP port, 0 = any free one (default %d)\n"
        "                      env ONESPIKE_PORT\n"
        "  --workers N         inference threads (default %ld = cores)\n"
        "                      env ONESPIKE_WORKERS\n"
        "  --queue N           requests waiting for a worker (default %d); when full: 503\n"
        "                      with Retry-After; env ONESPIKE_QUEUE\n"
        "  --max-body BYTES    request body limit, K/M/G suffixes (default %zuM); over it:\n"
        "                      413 (before reading when Content-Length says so, else as soon\n"
        "                      as a chunked body passes it); env ONESPIKE_MAX_BODY\n"
        "  --body-budget BYTES request bodies held at once, all connections together\n"
        "                      (default %zuM); bodies are allocated as they arrive; over it:\n"
        "                      503 with Retry-After; env ONESPIKE_BODY_BUDGET\n"
        "  --max-pixels N      image width*height limit, JPEG or raster (default %zu); over\n"
        "                      it: 422, checked from the header before decoding;\n"
        "                      env ONESPIKE_MAX_PIXELS\n"
        "  --deadline-ms MS    answer within this or 504 (default %d); not for maps\n"
        "                      (--map-timeout); env ONESPIKE_DEADLINE_MS\n"
        "  --map-max-body BYTES body limit of the map route instead of --max-body (default\n"
        "                      %zuM: a scene is many chips); --body-budget still bounds all\n"
        "                      bodies together (the default is lowered to it); over it: 413\n"
        "                      env ONESPIKE_MAP_MAX_BODY\n"
        "  --map-timeout S     a map must be done S seconds after its head arrived, else\n"
        "                      504 (default %d; --deadline-ms does not apply to maps)\n"
        "                      env ONESPIKE_MAP_TIMEOUT\n"
        "  --drain-ms MS       on SIGTERM/SIGINT, time to finish the requests received\n"
        "                      (default %d); env ONESPIKE_DRAIN_MS\n"
        "  --drain-running-ms MS  then, time still given to requests already running before\n"
        "                      the process exits without them (default %d)\n"
        "                      env ONESPIKE_DRAIN_RUNNING_MS\n"
        "  --conn-timeout S    close connections idle for S seconds (default %d)\n"
        "                      env ONESPIKE_CONN_TIMEOUT\n"
        "  --header-timeout S  a request head must be complete S seconds after it began,\n"
        "                      however steadily it trickles (default %d); else the\n"
        "                      connection is closed; env ONESPIKE_HEADER_TIMEOUT\n"
        "  --body-timeout S    a body must be complete S seconds after its head (default\n"
        "                      %d); else 408 and close; env ONESPIKE_BODY_TIMEOUT\n"
        "  --max-conns N       concurrent connections (default %d); when all are taken, a\n"
        "                      new one takes the place of the longest-waiting head (first\n"
        "                      heads over 10 ms, idle keep-alive over 1 s) or the slowest\n"
        "                      body (under 4 KiB/s); else 503 with Retry-After at once; %d\n"
        "                      more are kept for health, readiness and metrics requests;\n"
        "                      env ONESPIKE_MAX_CONNS\n"
        "  --max-batch N       classify requests of one model that a worker runs through\n"
        "                      the network together when they are queued (default %d;\n"
        "                      1: never; with no batch delay at most an even share of\n"
        "                      the queue over the workers); env ONESPIKE_MAX_BATCH\n"
        "  --batch-delay-us US how long a worker waits for a batch to fill (default %ld:\n"
        "                      it never waits, so a lone request is never delayed)\n"
        "                      env ONESPIKE_BATCH_DELAY_US\n"
        "  --idle-spin-us US   how long a worker that ran out of requests watches for the\n"
        "                      next before it sleeps (a sleeping thread takes tens of us to\n"
        "                      wake), only while the busy workers leave a core free for it\n"
        "                      (default %ld; 0: sleep at once)\n"
        "                      env ONESPIKE_IDLE_SPIN_US\n"
        "  --answer-spin-us US with one connection open, how long the HTTP thread watches\n"
        "                      for the answer of the request it queued instead of sleeping\n"
        "                      (the answer leaves one wake-up sooner), only while the\n"
        "                      workers leave a core free for it (default %ld; 0: sleep)\n"
        "                      env ONESPIKE_ANSWER_SPIN_US\n"
        "  --tta N             test-time views of a classify or infer request that does not\n"
        "                      ask (?tta=N, parameters.tta): 1, 2, 4 or 8, the image turned\n"
        "                      by 90 degrees and mirrored, answers averaged; about N/2 to N\n"
        "                      times the compute (default %d)\n"
        "                      env ONESPIKE_TTA\n"
        "  --log-level L       debug, info, warn or error (default info)\n"
        "                      env ONESPIKE_LOG_LEVEL\n"
        "  --token-file FILE   require 'Authorization: Bearer <token>' (the file's first\n"
        "                      line) on infer, classify and map; never on health, metadata\n"
        "                      or metrics (default: none); env ONESPIKE_TOKEN_FILE\n"
        "  --probe URL         GET URL (loopback only) and exit 0 if it answers 200, else 1\n"
        "                      (for container health checks; serves nothing)\n"
        "  --version           print the version\n"
        "  --help              this text\n"
        "\n"
        "Routes: GET /v2/health/live, /v2/health/ready, /v2, /v2/models/NAME[/versions/V],\n"
        "/v2/models/NAME/ready, /metrics; POST /v2/models/NAME/infer (OIP JSON),\n"
        "/v2/models/NAME/classify (image/jpeg, image/tiff, image/png, image/jp2, or\n"
        "multipart/form-data field \"image\"; ?top_k=N, ?tta=N, ?bands=R,G,B,\n"
        "?scale=none|range:LO,HI|percentile:LO,HI for rasters; bands or data type the model\n"
        "cannot read: 422), /v2/models/NAME/map (image/tiff, image/png, image/jp2: a scene,\n"
        "answered as GeoJSON; ?window=PX or ?window_m=M, ?stride=PX, ?top_k, ?tta, ?bands,\n"
        "?scale; one worker per map,\n"
        "at most max(1, workers - 1) maps at once, beyond: 503 with Retry-After; SIGTERM\n"
        "cancels running maps: 503).\n",
        SRV_MAX_MODELS, SRV_DEFAULT_LISTEN, SRV_DEFAULT_PORT, cores > 0 ? cores : 1,
        SRV_DEFAULT_QUEUE, SRV_DEFAULT_MAX_BODY >> 20, SRV_DEFAULT_BODY_BUDGET >> 20,
        SRV_DEFAULT_MAX_PIXELS, SRV_DEFAULT_DEADLINE_MS, SRV_DEFAULT_MAP_MAX_BODY >> 20,
        SRV_DEFAULT_MAP_TIMEOUT_S, SRV_DEFAULT_DRAIN_MS, SRV_DEFAULT_DRAIN_RUNNING_MS,
        SRV_DEFAULT_CONN_TIMEOUT_S,
        SRV_DEFAULT_HEADER_TIMEOUT_S, SRV_DEFAULT_BODY_TIMEOUT_S, SRV_DEFAULT_MAX_CONNS,
        SRV_HEALTH_RESERVE, SRV_DEFAULT_MAX_BATCH, (long)SRV_DEFAULT_BATCH_DELAY_US,
        (long)SRV_DEFAULT_IDLE_SPIN_US, (long)SRV_DEFAULT_ANSWER_SPIN_US,
        SRV_DEFAULT_TTA);
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static bool
bad_value(const char *flag, const char *env, const char *fmt, ...)
{
    va_list ap;
    if (env)
        fprintf(stderr, "%s: %s: ", SRV_PROG, env);
    else
        fprintf(stderr, "%s: --%s: ", SRV_PROG, flag);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see '%s --help')\n", SRV_PROG);
    return false;
}

/* Bytes with an optional binary suffix: 512, 64K, 8M, 1G. */
static bool parse_size(const char *s, size_t lo, size_t hi, size_t *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s))
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return false;
    int shift = 0;
    switch (*end) {
    case '\0': break;
    case 'k':
    case 'K':
        shift = 10;
        end++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        end++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        end++;
        break;
    default: return false;
    }
    if (*end || v > (hi >> shift))
        return false;
    v <<= shift;
    if (v < lo || v > hi)
        return false;
    *out = (size_t)v;
    return true;
}

static bool valid_model_name(const char *s, size_t n)
{
    if (n == 0 || n >= SRV_MODEL_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return false;
    return true;
}

/* "NAME=PATH" of length n (not necessarily NUL-terminated there). */
static bool add_model(srv_config *cfg, const char *s, size_t n, const char *where)
{
    const char *eq = memchr(s, '=', n);
    if (!eq)
        return bad_value("model", where, "\"%.*s\": expected NAME=PATH", (int)n, s);
    size_t nl = (size_t)(eq - s), pl = n - nl - 1;
    if (!valid_model_name(s, nl))
        return bad_value("model", where,
                         "model name \"%.*s\": expected 1..%d characters of A-Z a-z 0-9 . _ -",
                         (int)nl, s, SRV_MODEL_NAME_MAX - 1);
    if (pl == 0 || pl >= SRV_PATH_MAX)
        return bad_value("model", where, "model %.*s: path empty or longer than %d bytes", (int)nl,
                         s, SRV_PATH_MAX - 1);
    if (cfg->n_models == SRV_MAX_MODELS)
        return bad_value("model", where, "more than %d models", SRV_MAX_MODELS);
    for (int i = 0; i < cfg->n_models; i++)
        if (strlen(cfg->models[i].name) == nl && !memcmp(cfg->models[i].name, s, nl))
            return bad_value("model", where, "model name \"%.*s\" given twice", (int)nl, s);
    srv_model_spec *m = &cfg->models[cfg->n_models++];
    memcpy(m->name, s, nl);
    m->name[nl] = '\0';
    memcpy(m->path, eq + 1, pl);
    m->path[pl] = '\0';
    return true;
}

static bool copy_str(char *dst, size_t cap, const char *v, const char *flag, const char *where)
{
    size_t n = strlen(v);
    if (n == 0 || n >= cap)
        return bad_value(flag, where, "\"%s\": expected 1..%zu characters", v, cap - 1);
    memcpy(dst, v, n + 1);
    return true;
}

/* Apply one setting. where: NULL for a flag (messages say --flag), else the environment
 * variable's name. */
/* *out = v, microseconds in 0..max; else the error, said as bad_value says it. */
static bool set_us(const opt_def *o, const char *v, const char *where, long max, long *out)
{
    long l;
    if (!os_parse_long(v, 0, max, &l))
        return bad_value(o->flag, where, "\"%s\": expected microseconds 0..%ld", v, max);
    *out = l;
    return true;
}

static bool apply(srv_config *cfg, const opt_def *o, const char *v, const char *where)
{
    long l;
    size_t z;
    switch (o->id) {
    case OPT_LISTEN: return copy_str(cfg->listen, sizeof cfg->listen, v, o->flag, where);
    case OPT_PORT:
        if (!os_parse_long(v, 0, 65535, &l))
            return bad_value(o->flag, where, "\"%s\": expected a port 0..65535", v);
        cfg->port = (int)l;
        return true;
    case OPT_MODEL:
        if (where) { /* environment: a comma-separated list */
            for (const char *p = v; *p;) {
                const char *c = strchr(p, ',');
                size_t n = c ? (size_t)(c - p) : strlen(p);
                if (!add_model(cfg, p, n, where))
                    return false;
                p += n + (c != NULL);
            }
            return true;
        }
        return add_model(cfg, v, strlen(v), where);
    case OPT_WORKERS:
        if (!os_parse_long(v, 1, SRV_MAX_WORKERS, &l))
            return bad_value(o->flag, where, "\"%s\": expected 1..%d", v, SRV_MAX_WORKERS);
        cfg->workers = (int)l;
        return true;
    case OPT_QUEUE:
        if (!os_parse_long(v, 1, SRV_MAX_QUEUE, &l))
            return bad_value(o->flag, where, "\"%s\": expected 1..%d", v, SRV_MAX_QUEUE);
        cfg->queue = (int)l;
        return true;
    case OPT_MAX_BODY:
        if (!parse_size(v, 1, SRV_MAX_BODY_LIMIT, &z))
            return bad_value(o->flag, where, "\"%s\": expected bytes 1..1G (K/M/G suffixes)", v);
        cfg->max_body = z;
        return true;
    case OPT_MAX_PIXELS:
        if (!os_parse_long(v, 1, SRV_MAX_PIXELS_LIMIT, &l))
            return bad_value(o->flag, where, "\"%s\": expected a pixel count 1..%ld", v,
                             SRV_MAX_PIXELS_LIMIT);
        cfg->max_pixels = (size_t)l;
        return true;
    case OPT_DRAIN_RUNNING_MS:
        if (!os_parse_long(v, 0, SRV_MAX_MS, &l))
            return bad_value(o->flag, where, "\"%s\": expected milliseconds 0..%ld", v, SRV_MAX_MS);
        cfg->drain_running_ms = l;
        return true;
    case OPT_DEADLINE_MS:
    case OPT_DRAIN_MS:
        if (!os_parse_long(v, 1, SRV_MAX_MS, &l))
            return bad_value(o->flag, where, "\"%s\": expected milliseconds 1..%ld", v, SRV_MAX_MS);
        *(o->id == OPT_DEADLINE_MS ? &cfg->deadline_ms : &cfg->drain_ms) = l;
        return true;
    case OPT_CONN_TIMEOUT:
    case OPT_HEADER_TIMEOUT:
    case OPT_BODY_TIMEOUT:
        if (!os_parse_long(v, 1, SRV_MAX_TIMEOUT_S, &l))
            return bad_value(o->flag, where, "\"%s\": expected seconds 1..%d", v,
                             SRV_MAX_TIMEOUT_S);
        *(o->id == OPT_CONN_TIMEOUT     ? &cfg->conn_timeout_s
          : o->id == OPT_HEADER_TIMEOUT ? &cfg->header_timeout_s
                                        : &cfg->body_timeout_s) = (int)l;
        return true;
    case OPT_BODY_BUDGET:
        if (!parse_size(v, 1, SRV_MAX_BODY_BUDGET, &z))
            return bad_value(o->flag, where, "\"%s\": expected bytes 1..16G (K/M/G suffixes)", v);
        cfg->body_budget = z;
        return true;
    case OPT_MAP_MAX_BODY:
        if (!parse_size(v, 1, SRV_MAX_BODY_LIMIT, &z))
            return bad_value(o->flag, where, "\"%s\": expected bytes 1..1G (K/M/G suffixes)", v);
        cfg->map_max_body = z;
        return true;
    case OPT_MAP_TIMEOUT:
        if (!os_parse_long(v, 1, SRV_MAX_TIMEOUT_S, &l))
            return bad_value(o->flag, where, "\"%s\": expected seconds 1..%d", v,
                             SRV_MAX_TIMEOUT_S);
        cfg->map_timeout_s = (int)l;
        return true;
    case OPT_MAX_CONNS:
        if (!os_parse_long(v, 1, SRV_MAX_CONNS_LIMIT, &l))
            return bad_value(o->flag, where, "\"%s\": expected 1..%d", v, SRV_MAX_CONNS_LIMIT);
        cfg->max_conns = (int)l;
        return true;
    case OPT_MAX_BATCH:
        if (!os_parse_long(v, 1, SRV_MAX_BATCH, &l))
            return bad_value(o->flag, where, "\"%s\": expected 1..%d", v, SRV_MAX_BATCH);
        cfg->max_batch = (int)l;
        return true;
    case OPT_BATCH_DELAY:
        return set_us(o, v, where, SRV_MAX_BATCH_DELAY_US, &cfg->batch_delay_us);
    case OPT_IDLE_SPIN:
        return set_us(o, v, where, SRV_MAX_IDLE_SPIN_US, &cfg->idle_spin_us);
    case OPT_ANSWER_SPIN:
        return set_us(o, v, where, SRV_MAX_IDLE_SPIN_US, &cfg->answer_spin_us);
    case OPT_TTA:
        if (!os_parse_long(v, 1, OS_SESSION_MAX_VIEWS, &l) || !os_session_views_valid((int)l))
            return bad_value(o->flag, where, "\"%s\": expected 1, 2, 4 or 8 views", v);
        cfg->tta = (int)l;
        return true;
    case OPT_LOG_LEVEL: {
        int lv = srv_log_level_parse(v);
        if (lv < 0)
            return bad_value(o->flag, where, "\"%s\": expected debug, info, warn or error", v);
        cfg->log_level = (srv_log_level)lv;
        return true;
    }
    case OPT_TOKEN_FILE:
        return copy_str(cfg->token_file, sizeof cfg->token_file, v, o->flag, where);
    case OPT_PROBE: return copy_str(cfg->probe_url, sizeof cfg->probe_url, v, o->flag, where);
    default: return false;
    }
}

static void set_defaults(srv_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    strcpy(cfg->listen, SRV_DEFAULT_LISTEN);
    cfg->port = SRV_DEFAULT_PORT;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->workers = cores < 1 ? 1 : cores > SRV_MAX_WORKERS ? SRV_MAX_WORKERS : (int)cores;
    cfg->queue = SRV_DEFAULT_QUEUE;
    cfg->max_body = SRV_DEFAULT_MAX_BODY;
    cfg->max_pixels = SRV_DEFAULT_MAX_PIXELS;
    cfg->deadline_ms = SRV_DEFAULT_DEADLINE_MS;
    cfg->drain_ms = SRV_DEFAULT_DRAIN_MS;
    cfg->drain_running_ms = SRV_DEFAULT_DRAIN_RUNNING_MS;
    cfg->conn_timeout_s = SRV_DEFAULT_CONN_TIMEOUT_S;
    cfg->max_conns = SRV_DEFAULT_MAX_CONNS;
    cfg->header_timeout_s = SRV_DEFAULT_HEADER_TIMEOUT_S;
    cfg->body_timeout_s = SRV_DEFAULT_BODY_TIMEOUT_S;
    cfg->body_budget = SRV_DEFAULT_BODY_BUDGET;
    cfg->map_max_body = SRV_DEFAULT_MAP_MAX_BODY;
    cfg->map_timeout_s = SRV_DEFAULT_MAP_TIMEOUT_S;
    cfg->max_batch = SRV_DEFAULT_MAX_BATCH;
    cfg->batch_delay_us = SRV_DEFAULT_BATCH_DELAY_US;
    cfg->idle_spin_us = SRV_DEFAULT_IDLE_SPIN_US;
    cfg->answer_spin_us = SRV_DEFAULT_ANSWER_SPIN_US;
    cfg->tta = SRV_DEFAULT_TTA;
    cfg->log_level = SRV_LOG_INFO;
}

srv_config_result srv_config_parse(int argc, char **argv, srv_config *cfg)
{
    struct option lopts[N_OPTS + 1];
    bool model_flag = false;
    set_defaults(cfg);
    for (size_t i = 0; i < N_OPTS; i++) {
        lopts[i] =
            (struct option){opt_defs[i].flag, opt_defs[i].has_arg ? required_argument : no_argument,
                            NULL, opt_defs[i].id};
    }
    lopts[N_OPTS] = (struct option){0};

    /* First pass: flags only to learn whether --model was given (then ONESPIKE_MODEL is not
     * read) and to catch --help early; values are applied after the environment. */
    int ch;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        if (ch == OPT_HELP) {
            srv_config_print_help(stdout);
            return SRV_CONFIG_EXIT;
        }
        if (ch == OPT_VERSION) {
            printf("%s %s\n", SRV_PROG, SRV_VERSION);
            return SRV_CONFIG_EXIT;
        }
        if (ch == OPT_MODEL)
            model_flag = true;
        if (ch == '?' || ch == ':') {
            fprintf(stderr, "%s: unknown option or missing value: %s\n(see '%s --help')\n",
                    SRV_PROG, argv[optind - 1], SRV_PROG);
            return SRV_CONFIG_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument \"%s\"\n(see '%s --help')\n", SRV_PROG,
                argv[optind], SRV_PROG);
        return SRV_CONFIG_USAGE;
    }
    for (size_t i = 0; i < N_OPTS; i++) {
        const opt_def *o = &opt_defs[i];
        const char *v = o->env ? getenv(o->env) : NULL;
        if (!v || !*v || (o->id == OPT_MODEL && model_flag))
            continue;
        if (!apply(cfg, o, v, o->env))
            return SRV_CONFIG_USAGE;
    }
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        for (size_t i = 0; i < N_OPTS; i++)
            if (opt_defs[i].id == ch && !apply(cfg, &opt_defs[i], optarg, NULL))
                return SRV_CONFIG_USAGE;
    }
    if (cfg->body_budget < cfg->max_body) {
        fprintf(stderr,
                "%s: --body-budget %zu is below --max-body %zu: no body of the largest size "
                "could ever be received\n(see '%s --help')\n",
                SRV_PROG, cfg->body_budget, cfg->max_body, SRV_PROG);
        return SRV_CONFIG_USAGE;
    }
    bool map_body_given = false;
    for (size_t i = 0; i < N_OPTS; i++)
        if (opt_defs[i].id == OPT_MAP_MAX_BODY && getenv(opt_defs[i].env) &&
            *getenv(opt_defs[i].env))
            map_body_given = true;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1)
        map_body_given |= ch == OPT_MAP_MAX_BODY;
    if (cfg->body_budget < cfg->map_max_body && !map_body_given)
        cfg->map_max_body = cfg->body_budget; /* the default scene limit, within a small budget */
    if (cfg->body_budget < cfg->map_max_body) {
        fprintf(stderr,
                "%s: --body-budget %zu is below --map-max-body %zu: no scene of the largest size "
                "could ever be received\n(see '%s --help')\n",
                SRV_PROG, cfg->body_budget, cfg->map_max_body, SRV_PROG);
        return SRV_CONFIG_USAGE;
    }
    if (!cfg->probe_url[0] && cfg->n_models == 0) {
        fprintf(stderr,
                "%s: no model: give --model NAME=PATH (or ONESPIKE_MODEL)\n(see '%s --help')\n",
                SRV_PROG, SRV_PROG);
        return SRV_CONFIG_USAGE;
    }
    return SRV_CONFIG_RUN;
}
