#include <sys/socket.h>
#include <sys/eventfd.h>
#include <netinet/in.h>
#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

/* setns(2) needs _GNU_SOURCE in glibc's headers; declare it here for Swift. */
extern int setns(int fd, int nstype);
static inline int mirror_agent_setns_net(int fd) { return setns(fd, 0x40000000 /* CLONE_NEWNET */); }
