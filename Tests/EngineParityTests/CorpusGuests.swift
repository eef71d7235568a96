extension CorpusGuest {
  /// The corpus, in guests/corpus.
  static let all: [CorpusGuest] = [tripleFault]

  static let tripleFault = CorpusGuest(
    name: "triple_fault",
    expectedOutput: """
      loading an empty IDT, then ud2

      """,
    expectedStatus: 6, expectedReason: "shutdown(tripleFault)", expectedDeviceLog: [], knownKVMDifference: nil)
}
