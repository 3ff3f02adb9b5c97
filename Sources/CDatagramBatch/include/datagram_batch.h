#ifndef MIRROR_AGENT_DATAGRAM_BATCH_H
#define MIRROR_AGENT_DATAGRAM_BATCH_H

/* recvmmsg(2)/sendmmsg(2) for Swift: glibc declares them only under _GNU_SOURCE, which
 * Swift's Glibc module is not built with. The wrappers are compiled with it instead. */

#include <sys/socket.h>

/* Same layout as glibc's struct mmsghdr (checked in datagram_batch.c). */
typedef struct {
    struct msghdr msg_hdr;
    unsigned int msg_len;
} mirror_agent_mmsghdr;

/* recvmmsg with MSG_WAITFORONE: blocks until one datagram is there, then takes whatever
 * else is already queued, up to `count`, without waiting again. */
int mirror_agent_recv_burst(int fd, mirror_agent_mmsghdr *messages, unsigned int count);

/* sendmmsg: sends `count` datagrams in one call; returns how many were sent or -1. */
int mirror_agent_send_burst(int fd, mirror_agent_mmsghdr *messages, unsigned int count);

/* Names the calling thread (shown by top -H, ps -L, perf), at most 15 characters. */
void mirror_agent_name_thread(const char *name);

#endif
