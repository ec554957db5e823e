/* SPDX-License-Identifier: Apache-2.0 */
#include "proto/bus-uv.h"

#include <errno.h>
#include <stdlib.h>

#include <hiredis/async.h>

struct uv_redis {
        redisAsyncContext *ac; /* NULL once hiredis cleaned up */
        uv_poll_t poll;
        int events;
};

static void on_poll(uv_poll_t *h, int status, int events)
{
        struct uv_redis *p = h->data;

        if (!p->ac)
                return;
        if (status < 0) {
                /* libuv stopped the handle on POLLERR: let hiredis read the
                 * error (or EOF) so it disconnects; resume if it did not. */
                redisAsyncHandleRead(p->ac);
                if (p->ac && p->events)
                        uv_poll_start(&p->poll, p->events, on_poll);
                return;
        }
        if (events & UV_READABLE)
                redisAsyncHandleRead(p->ac);
        if (p->ac && (events & UV_WRITABLE))
                redisAsyncHandleWrite(p->ac);
}

static void update(struct uv_redis *p, int events)
{
        p->events = events;
        if (events)
                uv_poll_start(&p->poll, events, on_poll);
        else
                uv_poll_stop(&p->poll);
}

static void add_read(void *privdata)
{
        struct uv_redis *p = privdata;

        update(p, p->events | UV_READABLE);
}

static void del_read(void *privdata)
{
        struct uv_redis *p = privdata;

        update(p, p->events & ~UV_READABLE);
}

static void add_write(void *privdata)
{
        struct uv_redis *p = privdata;

        update(p, p->events | UV_WRITABLE);
}

static void del_write(void *privdata)
{
        struct uv_redis *p = privdata;

        update(p, p->events & ~UV_WRITABLE);
}

static void on_closed(uv_handle_t *h)
{
        free(h->data);
}

static void cleanup(void *privdata)
{
        struct uv_redis *p = privdata;

        p->ac = NULL;
        p->events = 0;
        uv_close((uv_handle_t *)&p->poll, on_closed);
}

int proto_bus_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
        struct uv_redis *p;

        if (ac->ev.data)
                return -EEXIST;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        if (uv_poll_init_socket(loop, &p->poll, ac->c.fd) < 0) {
                free(p);
                return -ENOMEM;
        }
        p->poll.data = p;
        p->ac = ac;
        ac->ev.addRead = add_read;
        ac->ev.delRead = del_read;
        ac->ev.addWrite = add_write;
        ac->ev.delWrite = del_write;
        ac->ev.cleanup = cleanup;
        ac->ev.data = p;
        return 0;
}
