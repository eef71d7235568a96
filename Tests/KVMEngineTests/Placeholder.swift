import Testing

@Test func kvmenginePlaceholderBuilds() {
  #expect(Bool(true))
}
