import Testing

@Test func interpreterPlaceholderBuilds() {
  #expect(Bool(true))
}
