/*
 * conn.c - a connection's life in the gateway, in one place: allocated (or
 * reused from the free list) and registered with epoll when accepted,
 * reset for each new connection, and closed, which abandons a request it
 * still waits for (its slot is freed, or left ABORTED to its worker).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <netdb.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "gateway/internal.h"

/* Connections above max_connections are still read, up to
 * GW_OVERFLOW_CONNS more: a health probe is answered, anything else gets a
 * proper 503, and the connection is closed. Beyond, they are closed at
 * once. */
#define OVERFLOW_CONNS GW_OVERFLOW_CONNS

static struct gw_conn *conn_alloc(struct gw *gw)
{
    if (gw->free_head != UINT32_MAX) {
        struct gw_conn *c = gw->conns[gw->free_head];
        gw->free_head = c->free_next;
        return c;
    }
    if (gw->nconns == UINT32_MAX - 1)
        return NULL;
    if (gw->nconns == gw->conns_cap) {
        uint32_t cap = gw->conns_cap ? gw->conns_cap * 2 : 64;
        struct gw_conn **n = realloc(gw->conns, sizeof *n * cap);
        if (!n)
            return NULL;
        gw->conns = n;
        gw->conns_cap = cap;
    }
    struct gw_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->gw = gw;
    c->fd = -1;
    c->body.account = &gw->body_bytes;
    c->out.account = &gw->body_bytes; /* unread answers count against the same cap */
    c->coll.account = &gw->body_bytes; /* and streams collected for generate */
    c->idx = gw->nconns;
    gw->conns[gw->nconns++] = c;
    return c;
}

void gw_spares_refill(struct gw *gw)
{
    for (int i = 0; i < GW_SPARE_FDS; i++)
        if (gw->spare_fds[i] < 0)
            gw->spare_fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void gw_conn_close(struct gw *gw, struct gw_conn *c)
{
    if (c->fd < 0)
        return;
    if (c->phase == GW_WAIT)
        gw_pending_abandon(gw, c);  /* client gone: free or abort its slot */
    close(c->fd);  /* also leaves the epoll set: the fd is never duplicated */
    c->fd = -1;
    c->gen++;
    c->phase = GW_IDLE;
    if (c->prev)
        c->prev->next = c->next;
    else
        gw->active = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    gw->nactive--;
    gw_buf_reset(&c->out, GW_BUF_KEEP);
    gw_buf_reset(&c->body, GW_BUF_KEEP);
    c->out_off = 0;
    c->free_next = gw->free_head;
    gw->free_head = c->idx;
    c->overflow = false;
    gw_spares_refill(gw);
}

void gw_conn_open(struct gw *gw, int fd, const struct sockaddr *peer, unsigned peerlen, bool reserve,
                  bool metrics_port)
{
    bool over = reserve || gw->nactive >= gw->max_connections;
    if (over && !reserve && gw->nactive >= gw->max_connections + OVERFLOW_CONNS) {
        /* Full: an idle keep-alive connection makes room (its client
         * reconnects when it has something to ask), so that a health probe
         * or a new client is not turned away by clients that sit idle. */
        struct gw_conn *victim = NULL;
        unsigned looked = 0;
        for (struct gw_conn *k = gw->active; k && looked < 1024; k = k->next, looked++)
            if (k->phase == GW_IDLE && k->out_off == k->out.len && k->in_len == 0 &&
                (!victim || k->phase_start_ns < victim->phase_start_ns))
                victim = k;
        if (victim)
            gw_conn_close(gw, victim);
    }
    if (over && !reserve && gw->nactive >= gw->max_connections + OVERFLOW_CONNS) {
        char busy[256];
        int n = snprintf(busy, sizeof busy,
                         "HTTP/1.1 503 Service Unavailable\r\nDate: %s\r\nContent-Type: application/json\r\n"
                         "Content-Length: 32\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
                         "{\"error\":\"too many connections\"}", gw_http_date(gw));
        if (n > 0 && (size_t)n < sizeof busy) {
            ssize_t w = send(fd, busy, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w;
        }
        gw_count_status(gw, RM_GW_SERVER, 503);
        close(fd);
        return;
    }
    struct gw_conn *c = conn_alloc(gw);
    if (!c) {
        rm_err("accept: out of memory for a connection: closed");
        close(fd);
        return;
    }
    c->fd = fd;
    c->metrics_port = metrics_port;
    gw_conn_start(gw, c);
    /* the client's address, for the access log */
    char host[NI_MAXHOST] = "-", serv[NI_MAXSERV] = "";
    if (gw->access_fd >= 0 && peer && peerlen && peer->sa_family != AF_UNIX &&
        getnameinfo(peer, peerlen, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        snprintf(c->peer, sizeof c->peer, peer->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
    else
        snprintf(c->peer, sizeof c->peer, peer && peer->sa_family == AF_UNIX ? "unix" : "-");
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.u64 = EV_CONN(c)};
    if (epoll_ctl(gw->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        rm_err("epoll_ctl(ADD connection): %s", strerror(errno));
        close(fd);
        c->fd = -1;
        c->gen++;
        c->free_next = gw->free_head;
        gw->free_head = c->idx;
        return;
    }
    c->prev = NULL;
    c->next = gw->active;
    if (gw->active)
        gw->active->prev = c;
    gw->active = c;
    gw->nactive++;
    if (over) {
        c->keepalive = false;
        c->overflow = true; /* routes.c: health answered, anything else 503 */
    }
}

void gw_conn_start(struct gw *gw, struct gw_conn *c)
{
    llhttp_init(&c->parser, HTTP_REQUEST, &gw->settings);
    c->parser.data = c;
    /* Any DIGIT.DIGIT version is parsed (llhttp 8 refuses 1.2 or 3.0 like
     * malformed ones) so that http.c answers a well-formed version it does
     * not speak with 505, and a malformed one with 400. */
#if LLHTTP_VERSION_MAJOR >= 9
    llhttp_set_lenient_version(&c->parser, 1);
#else
    c->parser.lenient_flags |= LENIENT_VERSION;
#endif
    c->tail_len = 0;
    c->phase = GW_IDLE;
    c->phase_start_ns = gw->now;
    c->last_read_ns = gw->now;
    c->last_write_ns = gw->now;
    c->readable = true;  /* data may have come with the connection */
    c->writable = true;
    c->rdhup = false;
    c->eof = false;
    c->broken = false;
    c->close_after = false;
    c->in_off = 0;
    c->in_len = 0;
    c->out.len = 0;
    c->out.oom = false;
    c->out_off = 0;
    c->ticket.slot = RM_NO_SLOT;
    c->answers = 0;
    c->pnext = c->pprev = NULL;
    gw_req_reset(c);
}
