import Testing

@Test func mirrorAgentTestsPending() {}
