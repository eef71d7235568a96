import Testing

@Test func x86PlaceholderBuilds() {
  #expect(Bool(true))
}
