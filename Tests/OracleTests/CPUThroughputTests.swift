import Testing

@testable import Oracles

/// The throughput benchmark's workload runs to the same result natively and on the model (the
/// benchmark throws when they differ), and counts the instructions it claims.
@Test func throughputWorkloadAgreesWithTheHost() throws {
  #if !(os(Linux) && arch(x86_64))
    print("SKIP: the native runner needs Linux on x86-64")
    return
  #endif
  let m = try CPUThroughput.measure(instructions: 3 * CPUThroughput.instructionsPerPass)
  #expect(m.instructions == 3 * CPUThroughput.instructionsPerPass + 1)
  #expect(m.modelSeconds > 0 && m.nativeSeconds > 0)
}
