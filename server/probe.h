/* probe.h - `onespike-serve --probe URL`: a health check for container runtimes that have no
 * curl. GETs the URL over a plain TCP socket on the loopback interface and reports whether it
 * answered 200.
 */
#ifndef SRV_PROBE_H
#define SRV_PROBE_H

#define SRV_PROBE_TIMEOUT_MS 3000

/* 0 if URL (http://127.0.0.1:PORT/PATH, http://localhost..., http://[::1]...) answered 200
 * within SRV_PROBE_TIMEOUT_MS, 1 otherwise (the reason on stderr), 2 for a URL that is not an
 * http URL on a loopback host. */
int srv_probe_run(const char *url);

#endif
