/// Placeholder until the netlink layer lands.
enum NetlinkModule {}
