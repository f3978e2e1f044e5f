#define _GNU_SOURCE
#include "CSyscalls.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

_Static_assert(CEPOLL_IN == EPOLLIN && CEPOLL_OUT == EPOLLOUT && CEPOLL_ERR == EPOLLERR && CEPOLL_HUP == EPOLLHUP &&
                   CEPOLL_RDHUP == EPOLLRDHUP && CEPOLL_ONESHOT == (int)EPOLLONESHOT,
               "epoll event bits");
_Static_assert(CEPOLL_CTL_ADD == EPOLL_CTL_ADD && CEPOLL_CTL_DEL == EPOLL_CTL_DEL && CEPOLL_CTL_MOD == EPOLL_CTL_MOD,
               "epoll_ctl operations");

int cepoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int cepoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event event = {.events = events, .data = {.u64 = data}};
    return epoll_ctl(epfd, op, fd, &event);
}

int cepoll_wait(int epfd, cepoll_event *out, int capacity, int timeout_ms) {
    struct epoll_event events[64];
    if (capacity > 64) capacity = 64;
    int count = epoll_wait(epfd, events, capacity, timeout_ms);
    for (int i = 0; i < count; i++) {
        out[i].events = events[i].events;
        out[i].data = events[i].data.u64;
    }
    return count;
}

int cepoll_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

int csys_accept_nonblocking(int listener, struct sockaddr *address, unsigned int *length) {
    return accept4(listener, address, (socklen_t *)length, SOCK_NONBLOCK | SOCK_CLOEXEC);
}
