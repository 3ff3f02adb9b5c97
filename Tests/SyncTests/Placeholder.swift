import Testing

@Test func syncTestsPending() {}
