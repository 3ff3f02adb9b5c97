import Testing

@Test func nftablesTestsPending() {}
