import Testing

@Test func oraclePlaceholderBuilds() {
  #expect(Bool(true))
}
