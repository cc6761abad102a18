/* probe.c - a minimal loopback HTTP GET (see probe.h). */
#include "probe.h"
#include "http_status.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "onespike/clock.h"

#define PROBE_HOST_MAX    64
#define PROBE_REQUEST_MAX 2048
#define PROBE_STATUS_MAX  64
#define HTTP_DEFAULT_PORT 80

/* Wait for fd to become ready for `events` until the probe's deadline; false on timeout. */
static bool wait_fd(int fd, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - os_clock_ms();
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return true;
        if (n < 0 && errno != EINTR)
            return false;
    }
}

int srv_probe_run(const char *url)
{
    static const char scheme[] = "http://";
    char host[PROBE_HOST_MAX], req[PROBE_REQUEST_MAX], status[PROBE_STATUS_MAX];
    int rc = 1, fd = -1;
    long long deadline = os_clock_ms() + SRV_PROBE_TIMEOUT_MS;
    if (strncmp(url, scheme, sizeof scheme - 1)) {
        fprintf(stderr, "%s --probe: \"%s\": expected http://HOST:PORT/PATH\n", SRV_PROG, url);
        return 2;
    }
    const char *p = url + sizeof scheme - 1, *hend;
    if (*p == '[') { /* [::1] */
        hend = strchr(p, ']');
        if (!hend) {
            fprintf(stderr, "%s --probe: \"%s\": unterminated [address]\n", SRV_PROG, url);
            return 2;
        }
        p++;
    } else {
        hend = p + strcspn(p, ":/");
    }
    size_t hl = (size_t)(hend - p);
    if (hl == 0 || hl >= sizeof host) {
        fprintf(stderr, "%s --probe: \"%s\": bad host\n", SRV_PROG, url);
        return 2;
    }
    memcpy(host, p, hl);
    host[hl] = '\0';
    const char *q = hend + (*hend == ']');
    long port = HTTP_DEFAULT_PORT;
    if (*q == ':') {
        char *e;
        port = strtol(q + 1, &e, 10);
        if (e == q + 1 || port < 1 || port > 65535) {
            fprintf(stderr, "%s --probe: \"%s\": bad port\n", SRV_PROG, url);
            return 2;
        }
        q = e;
    }
    const char *path = *q ? q : "/";
    if (*path != '/') {
        fprintf(stderr, "%s --probe: \"%s\": bad path\n", SRV_PROG, url);
        return 2;
    }
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (!strcmp(host, "localhost"))
        strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1 && (ntohl(v4->sin_addr.s_addr) >> 24) == 127) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        sl = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1 &&
               IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr)) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        sl = sizeof *v6;
    } else {
        fprintf(stderr, "%s --probe: host \"%s\" is not a loopback address\n", SRV_PROG, host);
        return 2;
    }
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%ld\r\nUser-Agent: onespike-probe\r\n"
                     "Connection: close\r\n\r\n",
                     path, host, port);
    if (n < 0 || (size_t)n >= sizeof req) {
        fprintf(stderr, "%s --probe: URL too long\n", SRV_PROG);
        return 2;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        goto fail;
    if (connect(fd, (struct sockaddr *)&ss, sl) && errno != EINPROGRESS)
        goto fail;
    if (!wait_fd(fd, POLLOUT, deadline))
        goto timeout;
    int soerr = 0;
    socklen_t el = sizeof soerr;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el);
    if (soerr) {
        errno = soerr;
        goto fail;
    }
    for (size_t off = 0; off < (size_t)n;) {
        if (!wait_fd(fd, POLLOUT, deadline))
            goto timeout;
        ssize_t w = send(fd, req + off, (size_t)n - off, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            goto fail;
        off += w > 0 ? (size_t)w : 0;
    }
    size_t got = 0;
    while (got < sizeof status - 1 && !memchr(status, '\n', got)) {
        if (!wait_fd(fd, POLLIN, deadline))
            goto timeout;
        ssize_t r = recv(fd, status + got, sizeof status - 1 - got, 0);
        if (r == 0)
            break;
        if (r < 0 && errno != EAGAIN && errno != EINTR)
            goto fail;
        got += r > 0 ? (size_t)r : 0;
    }
    status[got] = '\0';
    status[strcspn(status, "\r\n")] = '\0';
    int code = 0;
    if (sscanf(status, "HTTP/%*d.%*d %d", &code) == 1 && code == 200) {
        rc = 0;
    } else {
        fprintf(stderr, "%s --probe: %s answered \"%s\"\n", SRV_PROG, url, status);
    }
    goto out;
timeout:
    fprintf(stderr, "%s --probe: %s: no answer within %d ms\n", SRV_PROG, url,
            SRV_PROBE_TIMEOUT_MS);
    goto out;
fail:
    fprintf(stderr, "%s --probe: %s: %s\n", SRV_PROG, url, strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    return rc;
}
