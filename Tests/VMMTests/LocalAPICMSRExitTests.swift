import Testing

@testable import VMM

/// The runner's answers to the local APIC's MSR exits (a scripted vCPU, whose TSC reads 0 at
/// 1 GHz): the machine asks every vCPU to trap them, x2APIC MSRs in xAPIC mode fault, other MSRs
/// fault, and a TSC deadline beyond the end of guest time saturates instead of wrapping.
@Suite struct LocalAPICMSRExitTests {
  typealias Step = ScriptedVirtualCPU.Step

  final class Responses: @unchecked Sendable {
    var list: [ExitResponse?] = []
  }

  static func run(_ exits: [VMExit]) throws -> (Machine, [ExitResponse?]) {
    let responses = Responses()
    var steps: [Step] = []
    for exit in exits {
      steps.append(
        Step { cpu in
          responses.list.append(cpu.lastResponse)
          return exit
        })
    }
    steps.append(
      Step { cpu in
        responses.list.append(cpu.lastResponse)
        return .io(PortAccess(port: 0xF4, size: 1, isWrite: true, value: 0))
      })
    let engine = ScriptedEngine(script: steps)
    let machine = try Machine(
      memory: try GuestMemory(ramSize: 1 << 20),
      boot: BootState(mode: .real, registers: Registers(), specialRegisters: SpecialRegisters()),
      engine: engine, configuration: MachineConfiguration(timeoutSeconds: 60))
    #expect(engine.vcpu.exitControls.msrReadExits.isSuperset(of: VCPURunner.localAPICMSRs))
    #expect(engine.vcpu.exitControls.msrWriteExits.isSuperset(of: VCPURunner.localAPICMSRs))
    #expect(machine.run().reason == .debugExit(value: 0))
    return (machine, Array(responses.list.dropFirst()))
  }

  @Test func theRunnerAnswersTheAPICMSRsAndFaultsTheRest() throws {
    let gp = ExitResponse.fault(vector: 13, errorCode: 0)
    let (_, responses) = try Self.run([
      .msrRead(index: 0x802),  // xAPIC mode: #GP
      .msrRead(index: 0x1B),
      .msrWrite(index: 0x1B, value: 0xFEE0_0C00),
      .msrRead(index: 0x802),
      .msrRead(index: 0x123),  // not an APIC MSR
    ])
    #expect(responses == [gp, .value(0xFEE0_0900), ExitResponse.none, .value(0), gp])
  }

  @Test func aDeadlineBeyondTheEndOfGuestTimeDoesNotWrapAround() throws {
    let (machine, _) = try Self.run([
      .mmio(MMIOAccess(address: LocalAPIC.base + 0xF0, size: 4, isWrite: true, value: 0x1FF)),
      .mmio(MMIOAccess(address: LocalAPIC.base + 0x320, size: 4, isWrite: true, value: 0x4_0040)),
      .msrWrite(index: 0x6E0, value: .max),
    ])
    let apic = machine.runners[0].lapic
    #expect(apic.armedTSCDeadline == .max)  // still armed: it did not fire at once
    #expect(apic.nextDeadline == .max)
  }
}
