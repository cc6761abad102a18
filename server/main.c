/* main.c - onespike-serve: start-up, serving, and the SIGTERM/SIGINT drain.
 *
 * Start-up is all or nothing: every configured model is loaded and verified, and every worker's
 * sessions are allocated, before the port opens. A model that fails verification stops the
 * process with exit status 1 and a log line naming the model, the file and the reason: with
 * several models, serving a subset would make /v2/health/ready lie about the configuration, and
 * an orchestrator restarting a crash-looping pod surfaces the bad file faster than a pod that
 * runs half its models.
 *
 * Shutdown (SIGTERM or SIGINT): mark not ready (ready probes answer 503, new inference requests
 * are refused with 503), stop accepting connections, wait up to --drain-ms for every request
 * already received to be answered, cancel what is still queued after that (503), let running
 * inferences finish, stop, exit 0. A second signal cuts the wait short.
 *
 * SIGHUP (a terminal closing, or an operator expecting a reload) is logged and ignored: there is
 * no reload (models and flags are read once; restart the process, or roll the pods, to change
 * them), and dying on it would lose every request in flight.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "onespike/clock.h"
#include "pool.h"
#include "probe.h"
#include "server.h"

/* OpenBLAS's own threads would fight the worker pool for the cores: one BLAS thread per worker,
 * parallelism from the pool (docs/DESIGN.md §4). Declared here to avoid depending on cblas.h. */
void openblas_set_num_threads(int num_threads);

#define EXIT_START_FAILED 1
#define EXIT_USAGE        2
#define DRAIN_POLL_MS     10
#define FLUSH_GRACE_MS    1000 /* after the pool stops: time for resumed answers to be sent */

static srv_config cfg; /* large (paths); static rather than on the stack */

/* Read the bearer token: the file's first line, without surrounding whitespace. */
static bool read_token(const char *path, srv_server *s)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        srv_log_detail(SRV_LOG_ERROR, "start-up failed", "--token-file %s: %s", path,
                       strerror(errno));
        return false;
    }
    char line[SRV_TOKEN_MAX + 2];
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    size_t n = ok ? strlen(line) : 0;
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' ||
                 line[n - 1] == '\t'))
        line[--n] = '\0';
    char *t = line;
    while (*t == ' ' || *t == '\t')
        t++, n--;
    if (!ok || n == 0 || n >= SRV_TOKEN_MAX) {
        srv_log_detail(SRV_LOG_ERROR, "start-up failed",
                       "--token-file %s: expected a token of 1..%d characters on its first line",
                       path, SRV_TOKEN_MAX - 1);
        return false;
    }
    memcpy(s->token, t, n);
    s->token_len = n;
    return true;
}

static bool load_models(srv_server *s)
{
    for (int i = 0; i < cfg.n_models; i++) {
        const srv_model_spec *spec = &cfg.models[i];
        os_errclear();
        os_status st = os_model_load(spec->path, &s->models[i]);
        if (st) {
            srv_logline l;
            if (srv_log_begin(&l, SRV_LOG_ERROR, "start-up failed: cannot load model")) {
                srv_log_str(&l, "model", spec->name);
                srv_log_str(&l, "path", spec->path);
                srv_log_str(&l, "error", *os_errdetail() ? os_errdetail() : os_strerror(st));
                srv_log_end(&l);
            }
            return false;
        }
        s->names[i] = spec->name;
        s->n_models = i + 1;
        if (os_session_views_check(s->models[i], cfg.tta)) {
            srv_log_detail(SRV_LOG_ERROR, "start-up failed", "--tta, model %s: %s", spec->name,
                           os_errdetail());
            return false;
        }
        srv_logline l;
        if (srv_log_begin(&l, SRV_LOG_INFO, "model loaded")) {
            int c, h, w;
            os_model_input(s->models[i], &c, &h, &w);
            srv_log_str(&l, "model", spec->name);
            srv_log_str(&l, "path", spec->path);
            srv_log_str(&l, "version", os_model_version(s->models[i]));
            srv_log_int(&l, "classes", os_model_classes(s->models[i]));
            srv_log_int(&l, "input", h);
            srv_log_int(&l, "timesteps", os_model_timesteps(s->models[i]));
            srv_log_str(&l, "sha256", os_model_sha256(s->models[i]));
            srv_log_end(&l);
        }
    }
    return true;
}

/* Signals arrive through a self-pipe: the handler may run on any thread (OpenBLAS starts its
 * own threads before main, so blocking the signals here would not cover them), and all it does
 * is write the signal number to the pipe. The main thread reads it with a timeout. */
static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t w = write(sig_pipe[1], &b, 1);
    (void)w; /* a full pipe already holds a pending signal */
    errno = saved;
}

static bool install_signals(void)
{
    if (pipe(sig_pipe))
        return false;
    for (int i = 0; i < 2; i++) {
        fcntl(sig_pipe[i], F_SETFD, FD_CLOEXEC);
        fcntl(sig_pipe[i], F_SETFL, O_NONBLOCK);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client that hangs up is not fatal */
    return true;
}

/* The next SIGTERM/SIGINT, or 0 after timeout_ms (< 0: wait for ever). SIGHUP is logged here
 * and waited past. */
static int wait_signal(long timeout_ms)
{
    struct pollfd p = {.fd = sig_pipe[0], .events = POLLIN};
    long long end = os_clock_ms() + timeout_ms;
    for (;;) {
        long left = timeout_ms < 0 ? -1 : (long)(end - os_clock_ms());
        if (timeout_ms >= 0 && left < 0)
            left = 0;
        int n = poll(&p, 1, (int)left);
        if (n > 0) {
            unsigned char b = 0;
            bool got = read(sig_pipe[0], &b, 1) == 1;
            if (got && b == SIGHUP) {
                srv_log_detail(SRV_LOG_WARN, "SIGHUP ignored",
                               "no reload: models and settings are read at start-up; restart "
                               "to change them");
                continue;
            }
            if (got)
                return b;
        }
        if (n == 0 || (n < 0 && errno != EINTR))
            return 0;
    }
}

/* The drain's last log line. */
static void log_drained(long long t0, int left, int cancelled, int abandoned, bool cut_short,
                        int still_open)
{
    srv_logline l;
    srv_log_begin_lifecycle(&l, "drained");
    srv_log_int(&l, "ms", os_clock_ms() - t0);
    srv_log_int(&l, "unfinished_at_deadline", left);
    srv_log_int(&l, "cancelled_in_queue", cancelled);
    srv_log_int(&l, "abandoned_running", abandoned);
    srv_log_bool(&l, "cut_short_by_second_signal", cut_short);
    srv_log_int(&l, "still_open", still_open);
    srv_log_end(&l);
}

static void drain(srv_server *s, srv_http *h, int sig)
{
    long long t0 = os_clock_ms(), deadline = t0 + cfg.drain_ms;
    int at_signal = srv_http_active(h);
    atomic_store(&s->draining, true);
    srv_http_quiesce(h);
    /* Logged once in effect: a client that reads this line and asks gets the draining answer. */
    srv_logline l;
    srv_log_begin_lifecycle(&l, "draining");
    srv_log_str(&l, "signal", sig == SIGINT ? "SIGINT" : "SIGTERM");
    srv_log_int(&l, "active_requests", at_signal);
    srv_log_int(&l, "drain_ms", cfg.drain_ms);
    srv_log_end(&l);
    bool cut_short = false;
    while (srv_http_active(h) > 0 && os_clock_ms() < deadline) {
        if (wait_signal(DRAIN_POLL_MS) > 0) {
            cut_short = true;
            break;
        }
    }
    int left = srv_http_active(h);
    int queued = 0, busy = 0;
    srv_pool_stats(s->pool, &queued, &busy, NULL);
    /* Anything still queued is answered 503; running jobs cannot be interrupted, so they get
     * --drain-running-ms to finish (with the defaults the whole exit stays within Kubernetes'
     * 30 s grace before SIGKILL), and a job still running after that, or at a second signal,
     * is abandoned with the process: the exit is bounded whatever a job does. */
    const long long until = os_clock_ms() + cfg.drain_running_ms;
    bool joined;
    while (!(joined = srv_pool_shutdown_within(s->pool, DRAIN_POLL_MS)) && os_clock_ms() < until)
        if (wait_signal(0) > 0) {
            cut_short = true;
            break;
        }
    int abandoned = 0;
    if (!joined) {
        int q;
        srv_pool_stats(s->pool, &q, &abandoned, NULL);
    }
    /* the answers resumed before now still go out; the abandoned stay open */
    long long grace = os_clock_ms() + FLUSH_GRACE_MS;
    while (srv_http_active(h) > abandoned && os_clock_ms() < grace)
        wait_signal(DRAIN_POLL_MS);
    log_drained(t0, left, queued, abandoned, cut_short, srv_http_active(h));
    if (!joined) { /* the pool cannot be destroyed while its jobs run: leave now */
        fflush(NULL);
        _exit(0);
    }
}

int main(int argc, char **argv)
{
    int rc = EXIT_START_FAILED;
    srv_server *s = NULL;
    srv_http *h = NULL;
    switch (srv_config_parse(argc, argv, &cfg)) {
    case SRV_CONFIG_EXIT: return 0;
    case SRV_CONFIG_USAGE: return EXIT_USAGE;
    case SRV_CONFIG_RUN: break;
    }
    if (cfg.probe_url[0])
        return srv_probe_run(cfg.probe_url);
    srv_log_set_level(cfg.log_level);

    if (!install_signals()) {
        srv_log_detail(SRV_LOG_ERROR, "start-up failed", "cannot set up signals: %s",
                       strerror(errno));
        return EXIT_START_FAILED;
    }

    json_object_seed(0); /* jansson's hash seed, set once before threads use it */
    openblas_set_num_threads(1);

    s = calloc(1, sizeof *s);
    if (!s)
        goto out;
    s->cfg = &cfg;
    atomic_init(&s->draining, false);
    atomic_init(&s->maps_active, 0);
    s->maps_max = cfg.workers > 1 ? cfg.workers - 1 : 1;
    if (cfg.token_file[0] && !read_token(cfg.token_file, s))
        goto out;
    if (!load_models(s))
        goto out;
    const char *versions[SRV_MAX_MODELS];
    for (int i = 0; i < s->n_models; i++)
        versions[i] = os_model_version(s->models[i]);
    os_status st = srv_metrics_create(s->names, versions, s->n_models, &s->metrics);
    srv_pool_opts po = {.workers = cfg.workers, .queue = cfg.queue, .max_pixels = cfg.max_pixels,
                        .max_batch = cfg.max_batch, .batch_delay_us = cfg.batch_delay_us,
                        .idle_spin_us = cfg.idle_spin_us,
                        .views = srv_views_room(&cfg)};
    if (!st)
        st = srv_pool_create(s->models, s->n_models, &po, &s->pool);
    if (!st)
        st = srv_http_start(s, &h);
    if (st) {
        srv_log_detail(SRV_LOG_ERROR, "start-up failed", "%s",
                       *os_errdetail() ? os_errdetail() : os_strerror(st));
        goto out;
    }
    srv_logline l;
    srv_log_begin_lifecycle(&l, "listening");
    srv_log_str(&l, "address", cfg.listen);
    srv_log_int(&l, "port", srv_http_port(h));
    srv_log_int(&l, "workers", cfg.workers);
    srv_log_int(&l, "cores", srv_pool_cpus(s->pool));
    srv_log_int(&l, "queue", cfg.queue);
    srv_log_int(&l, "models", s->n_models);
    srv_log_bool(&l, "token", s->token_len > 0);
    srv_log_end(&l);
    int sig = 0;
    while (!sig)
        sig = wait_signal(-1);
    drain(s, h, sig);
    rc = 0;
out:
    srv_http_stop(h);
    if (s) {
        srv_pool_destroy(s->pool);
        srv_metrics_destroy(s->metrics);
        for (int i = 0; i < s->n_models; i++)
            os_model_destroy(s->models[i]);
        free(s);
    }
    for (int i = 0; i < 2; i++)
        if (sig_pipe[i] >= 0)
            close(sig_pipe[i]);
    return rc;
}
