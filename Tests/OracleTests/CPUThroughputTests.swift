import TestHostSupport
import Testing

@testable import Oracles

/// The throughput benchmark's workload runs to the same result natively and on the model (the
/// benchmark throws when they differ), and counts the instructions it claims.
@Test(.requires(.nativeX86Linux)) func throughputWorkloadAgreesWithTheHost() throws {
  let m = try CPUThroughput.measure(instructions: 3 * CPUThroughput.instructionsPerPass)
  #expect(m.instructions == 3 * CPUThroughput.instructionsPerPass + 1)
  #expect(m.modelSeconds > 0 && m.nativeSeconds > 0)
}
