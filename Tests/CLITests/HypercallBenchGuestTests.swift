import Interpreter
import Testing
import VMM

@testable import TrivisorCLI

/// The `bench hypercall` guest (hand-assembled machine code) runs its loop and exits with 0, in
/// both variants; in the hypercall variant every call went through the page's stub 17.
@Suite struct HypercallBenchGuestTests {
  static func run(hypercall: Bool) throws -> RunOutcome {
    let memory = try GuestMemory(ramSize: 2 << 20)
    try memory.write(0x10000, bytes: HypercallBenchCommand.guest(calls: 100, hypercall: hypercall))
    let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000)
    var configuration = MachineConfiguration(timeoutSeconds: 60)
    configuration.firmwareConfigurationDevice = false
    let machine = try Machine(memory: memory, boot: boot, engine: InterpreterEngine(), configuration: configuration)
    return machine.run()
  }

  @Test func hypercallLoop() throws {
    let outcome = try Self.run(hypercall: true)
    #expect(outcome.reason == .debugExit(value: 0), "\(outcome.reason.description)")
    #expect(outcome.statistics.reasons.first { $0.reason == "hypercall" }?.count ?? 0 >= 100)
  }

  @Test func portLoop() throws {
    let outcome = try Self.run(hypercall: false)
    #expect(outcome.reason == .debugExit(value: 0), "\(outcome.reason.description)")
  }
}
