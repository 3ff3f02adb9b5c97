/// Placeholder until the DNS responder lands.
enum DNSResponderModule {}
