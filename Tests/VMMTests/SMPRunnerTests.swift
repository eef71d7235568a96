import Foundation
import Testing

@testable import VMM

/// Several vCPUs, each driven by its own runner thread (scripted, no engine): application
/// processors wait for a start-up IPI, INIT sends them back, the first stop ends every runner, and
/// the statistics are per vCPU.
@Suite struct SMPRunnerTests {
  typealias Step = ScriptedVirtualCPU.Step

  /// A guest that keeps running until something stops the machine.
  static func spinning() -> Step {
    Step { cpu in
      cpu.script.append(spinning())
      return .budgetExhausted
    }
  }

  final class Box: @unchecked Sendable {
    var machine: Machine?
  }

  static func machine(_ engine: ScriptedEngine, box: Box) throws -> Machine {
    let memory = try GuestMemory(ramSize: 1 << 20)
    let boot = BootState(mode: .real, registers: Registers(), specialRegisters: SpecialRegisters())
    var configuration = MachineConfiguration(timeoutSeconds: 60)
    configuration.cpuCount = engine.vcpus.count
    let m = try Machine(memory: memory, boot: boot, engine: engine, configuration: configuration)
    box.machine = m
    return m
  }

  @Test func anApplicationProcessorStartsAtItsStartupVectorAndItsStopEndsEveryRunner() throws {
    let box = Box()
    let engine = ScriptedEngine(scripts: [
      [
        Step { _ in
          #expect(box.machine!.runners[1].isWaitingForStartup)
          box.machine!.runners[1].receiveStartup(vector: 0x9A)
          return .budgetExhausted
        },
        Self.spinning(),
      ],
      [
        Step { cpu in
          // Real mode at 9A00:0000, physical 0x9A000.
          #expect(cpu.currentSpecialRegisters.cs.selector == 0x9A00)
          #expect(cpu.currentSpecialRegisters.cs.base == 0x9A000)
          #expect(cpu.currentRegisters.rip == 0)
          return .io(PortAccess(port: 0xF4, size: 1, isWrite: true, value: 5))
        }
      ],
    ])
    let machine = try Self.machine(engine, box: box)
    let outcome = machine.run()
    #expect(outcome.reason == .debugExit(value: 5))
    #expect(engine.vcpus[1].calls.first == .reset)  // SIPI: from the RESET state
    let summaries = try #require(outcome.statistics.vcpus)
    #expect(summaries.map(\.index) == [0, 1])
    #expect(summaries[1].byReason["io-out"] == 1)
    #expect(outcome.statistics.totalExits == summaries.reduce(0) { $0 + $1.exits })
  }

  /// What the BSP's script has done so far (its steps run on the BSP's thread, the AP's on its own).
  final class Phase: @unchecked Sendable {
    private let lock = NSLock()
    private var initSent = false
    private var secondSIPISent = false
    func noteINIT() { lock.withLock { initSent = true } }
    /// True exactly once: after the INIT, when the second SIPI is due.
    func takeSecondSIPI() -> Bool {
      lock.withLock {
        guard initSent && !secondSIPISent else { return false }
        secondSIPISent = true
        return true
      }
    }
  }

  /// The BSP: sends SIPI 0x10, then, once the AP has had INIT and waits again, SIPI 0x30.
  static func bsp(_ box: Box, _ phase: Phase) -> Step {
    Step { cpu in
      let ap = box.machine!.runners[1]
      if ap.isWaitingForStartup && phase.takeSecondSIPI() { ap.receiveStartup(vector: 0x30) }
      cpu.script.append(bsp(box, phase))
      return .budgetExhausted
    }
  }

  @Test func aStartupIPIOutsideWaitForSIPIIsIgnoredAndINITSendsTheVCPUBack() throws {
    let box = Box()
    let phase = Phase()
    let engine = ScriptedEngine(scripts: [
      [
        Step { _ in
          box.machine!.runners[1].receiveStartup(vector: 0x10)
          return .budgetExhausted
        },
        Self.bsp(box, phase),
      ],
      [
        Step { _ in
          let ap = box.machine!.runners[1]
          ap.receiveStartup(vector: 0x20)  // running: ignored
          ap.receiveINIT()
          phase.noteINIT()
          return .budgetExhausted
        },
        Step { cpu in
          // After INIT the vCPU waited for a new SIPI; this step runs only once one came.
          #expect(cpu.currentSpecialRegisters.cs.selector == 0x3000)
          return .io(PortAccess(port: 0xF4, size: 1, isWrite: true, value: 1))
        },
      ],
    ])
    let machine = try Self.machine(engine, box: box)
    #expect(machine.run().reason == .debugExit(value: 1))
  }

  @Test func moreVCPUsThanTheMachineSupportsAreRefused() throws {
    var configuration = MachineConfiguration()
    configuration.cpuCount = 0
    #expect(throws: EngineError.self) {
      _ = try Machine(
        memory: try GuestMemory(ramSize: 1 << 20),
        boot: BootState(mode: .real, registers: Registers(), specialRegisters: SpecialRegisters()),
        engine: ScriptedEngine(), configuration: configuration)
    }
  }
}
