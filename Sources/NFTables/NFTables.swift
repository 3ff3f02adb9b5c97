/// Placeholder until nftables programming lands.
enum NFTablesModule {}
