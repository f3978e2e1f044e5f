#ifndef CSYSCALLS_H
#define CSYSCALLS_H

#include <stdint.h>

/* epoll, eventfd and accept4 for HTTPCore's socket layer (Swift's Glibc module does not export them). */

enum {
    CEPOLL_IN = 0x001,
    CEPOLL_OUT = 0x004,
    CEPOLL_ERR = 0x008,
    CEPOLL_HUP = 0x010,
    CEPOLL_RDHUP = 0x2000,
    CEPOLL_ONESHOT = 0x40000000,
};

enum { CEPOLL_CTL_ADD = 1, CEPOLL_CTL_DEL = 2, CEPOLL_CTL_MOD = 3 };

/* One ready event, unpacked (the kernel's struct epoll_event is packed on x86-64). */
typedef struct cepoll_event {
    uint32_t events;
    uint64_t data;
} cepoll_event;

/* epoll_create1(EPOLL_CLOEXEC) */
int cepoll_create(void);
/* epoll_ctl with `data` as the event's u64; `events` is ignored for CEPOLL_CTL_DEL. */
int cepoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
/* epoll_wait into `out` (at most 64 events). */
int cepoll_wait(int epfd, cepoll_event *out, int capacity, int timeout_ms);
/* eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) */
int cepoll_eventfd(void);

struct sockaddr;
/* accept4(listener, address, length, SOCK_NONBLOCK | SOCK_CLOEXEC): the new fd is born non-blocking and
   close-on-exec, with no window in which a fork could inherit it. */
int csys_accept_nonblocking(int listener, struct sockaddr *address, unsigned int *length);

#endif
