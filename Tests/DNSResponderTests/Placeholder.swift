import Testing

@Test func dnsResponderTestsPending() {}
