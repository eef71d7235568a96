import Foundation
import Testing

@testable import VMM

/// The run loop driven by a scripted vCPU: what the VMM does with each exit, decided by the exits
/// alone (no engine, no guest code, no host timing).
@Suite struct RunLoopTests {
  typealias Step = ScriptedVirtualCPU.Step

  /// A machine over 1 MiB of RAM whose vCPU runs `script`; console output goes to `output`.
  final class Harness {
    let engine: ScriptedEngine
    let vm: Machine
    var cpu: ScriptedVirtualCPU { engine.vcpu }
    let output = Collected()

    init(
      stopOnOutput: String? = nil, reboot: ((GuestMemory) throws -> BootState)? = nil,
      rebootOnTripleFault: Bool = false, _ script: [Step]
    ) throws {
      engine = ScriptedEngine(script: script)
      let memory = try GuestMemory(ramSize: 1 << 20)
      let boot = BootState(mode: .real, registers: Registers(), specialRegisters: SpecialRegisters())
      let out = output
      var configuration = MachineConfiguration(
        consoleCapture: { out.bytes += $0 }, timeoutSeconds: 60, stopOnOutput: stopOnOutput)
      configuration.reboot = reboot
      configuration.rebootOnTripleFault = rebootOnTripleFault
      vm = try Machine(memory: memory, boot: boot, engine: engine, configuration: configuration)
    }
  }

  final class Collected {
    var bytes: [UInt8] = []
    var text: String { String(decoding: bytes, as: UTF8.self) }
  }

  @Test func portWritesReachTheDevicesAndPortReadsAreAnswered() throws {
    let h = try Harness(
      Step.print("hi\n", port: 0x3F8) + [
        Step.portIn(0x3FD),  // line status: transmitter empty
        Step { cpu in
          #expect(cpu.lastResponse == .value(0x60))
          return .io(PortAccess(port: 0x5555, size: 4, isWrite: false))  // nothing there
        },
        Step { cpu in
          #expect(cpu.lastResponse == .value(0xFFFF_FFFF))
          return .io(PortAccess(port: 0xF4, size: 1, isWrite: true, value: 3))
        },
      ])
    let outcome = h.vm.run()
    #expect(outcome.reason == .debugExit(value: 3))
    #expect(outcome.exitStatus == 7)
    #expect(h.output.text == "hi\n")
  }

  @Test func exitsTheVMMDoesNotServeGetNeutralAnswers() throws {
    let h = try Harness([
      .exit(.cpuid(leaf: 0, subleaf: 0)),
      .exit(.msrRead(index: 0x1234)),
      .exit(.msrWrite(index: 0x1234, value: 1)),
      .exit(.invlpg(address: 0x1000)),
      .exit(.hypercall),
      .exitOK,
    ])
    _ = h.vm.run()
    let answers: [ExitResponse] = h.cpu.calls.compactMap { call in
      if case .complete(let r) = call { return r }
      return nil
    }
    #expect(
      answers == [
        .cpuid(eax: 0, ebx: 0, ecx: 0, edx: 0), .fault(vector: 13, errorCode: 0), .fault(vector: 13, errorCode: 0),
        .none, .value(UInt64(UInt32(bitPattern: -38))),  // -ENOSYS in EAX: the scripted vCPU is in real mode
      ])
  }

  @Test func aPICInterruptWaitsForTheWindowThenIsInjectedOnce() throws {
    var h: Harness!
    // Initialize the master PIC at vector 0x20 with only IRQ 4 (COM1) unmasked.
    let picInit: [Step] = [(0x20, 0x11), (0x21, 0x20), (0x21, 0x04), (0x21, 0x01), (0x21, 0xEF)]
      .map { Step.portOut($0.0, $0.1) }
    h = try Harness(
      picInit + [
        Step { _ in
          h.vm.pic?.setIRQ(4, level: true)
          return .budgetExhausted
        },
        Step { cpu in
          // IF was 0: the VMM asked for a window instead of injecting.
          #expect(cpu.deliveredVectors.isEmpty)
          cpu.currentRegisters.rflags |= 0x200
          return .interruptWindow
        },
        Step { cpu in
          #expect(cpu.deliveredVectors == [0x24])
          h.vm.pic?.setIRQ(4, level: false)
          return .budgetExhausted
        },
        .exitOK,
      ])
    _ = h.vm.run()
    let interruptCalls = h.cpu.calls.filter {
      if case .run = $0 { return false }
      return true
    }
    #expect(
      interruptCalls == [.requestInterruptWindow(true), .injectInterrupt(vector: 0x24), .requestInterruptWindow(false)])
  }

  @Test func haltWithInterruptsDisabledEndsTheRun() throws {
    let h = try Harness([.exit(.halt)])
    guard case .haltedForever = h.vm.run().reason else {
      Issue.record("expected haltedForever")
      return
    }
  }

  @Test func stopOnOutputStopsAtTheEndOfTheLineWhateverFollows() throws {
    // The guest goes on printing after the line; the run must stop right after its newline.
    let h = try Harness(
      stopOnOutput: "ready",
      Step.print("boot\nsystem ready, waiting\n", port: 0x3F8)
        + Step.print("more output\n", port: 0x3F8) + [.exitOK])
    let outcome = h.vm.run()
    #expect(outcome.reason == .outputMatched("ready"))
    #expect(h.output.text == "boot\nsystem ready, waiting\n")
  }

  @Test func aStopRequestedWhileAnExitIsHandledEndsTheRunAtTheNextEntry() throws {
    var h: Harness!
    h = try Harness([
      Step { _ in
        h.vm.requestStop(.hostSignal(15))  // what the signal thread does: flag, then kick
        return .budgetExhausted
      },
      .exitOK,
    ])
    let outcome = h.vm.run()
    #expect(outcome.reason == .hostSignal(15))
    #expect(outcome.exitStatus == 12)
  }

  @Test func anEngineThatCannotGoOnEndsTheRunWithItsReport() throws {
    let h = try Harness([])
    guard case .internalError(let report) = h.vm.run().reason else {
      Issue.record("expected internalError")
      return
    }
    #expect(report.reason == ScriptedVirtualCPU.scriptEndedReason)
  }

  @Test func aHypercallIsDecodedFromTheRegistersAndAnsweredByItsHandler() throws {
    let h = try Harness([
      Step { cpu in
        cpu.currentSpecialRegisters.efer = 0x500
        cpu.currentSpecialRegisters.cs.l = true
        cpu.currentRegisters.rax = 60
        cpu.currentRegisters.rdi = 20
        cpu.currentRegisters.rsi = 22
        return .hypercall
      },
      .exitOK,
    ])
    h.vm.hypercalls.register(60) { call, _ in .value(call.arguments[0] + call.arguments[1]) }
    _ = h.vm.run()
    #expect(h.cpu.calls.contains(.complete(.value(42))))
    #expect(h.vm.hypercalls.counts == [60: 1])
  }

  @Test func a20ChangesReachTheVCPUThroughTheMachineControl() throws {
    let h = try Harness([
      .portOut(0x64, 0xDD),  // i8042: A20 off
      .portOut(0x92, 0x02),  // port 0x92 holds it open again
      .portOut(0x92, 0x00),
      .exitOK,
    ])
    _ = h.vm.run()
    let gates: [Bool] = h.cpu.calls.compactMap { call in
      if case .setA20Gate(let on) = call { return on }
      return nil
    }
    #expect(gates == [false, true, false])
  }

  /// The boot state a reboot gives the scripted vCPU: RIP tells the tests it was applied.
  static func rebootState(_ memory: GuestMemory) throws -> BootState {
    var registers = Registers()
    registers.rip = 0x7C00
    try memory.write(0x500, bytes: [0xAB])  // the loader ran again
    return BootState(mode: .real, registers: registers, specialRegisters: SpecialRegisters())
  }

  @Test func withoutARebootAResetStopsTheRunWithStatus14() throws {
    let h = try Harness([.portOut(0xCF9, 0x06), .exitOK])
    let outcome = h.vm.run()
    #expect(outcome.reason == .reset)
    #expect(outcome.exitStatus == 14)
    #expect(h.vm.control.resetHistory == [.resetControlRegister])
  }

  @Test func aResetRebootsTheMachineAndTheGuestRunsOn() throws {
    let h = try Harness(
      reboot: Self.rebootState,
      [
        .portOut(0x21, 0x00),  // unmask every master PIC line
        .portOut(0x64, 0xFE),  // i8042: pulse the reset line
        Step { cpu in
          #expect(cpu.currentRegisters.rip == 0x7C00)  // the boot state of the reboot
          return Step.portIn(0x21).body(cpu)
        },
        Step { cpu in
          #expect(cpu.lastResponse == .value(0xFF))  // the PIC is back at its power-on state
          return Step.portOut(0xCF9, 0x06).body(cpu)
        },
        .exitOK,
      ])
    let outcome = h.vm.run()
    #expect(outcome.reason == .debugExit(value: 0))
    #expect(outcome.statistics.resets == 2)
    #expect(h.cpu.calls.filter { $0 == .reset }.count == 2)
    #expect(h.vm.control.resetHistory == [.keyboardController, .resetControlRegister])
    #expect(try h.vm.memory.read(0x500, count: 1) == [0xAB])
  }

  @Test func aTripleFaultRebootsOnlyWhenConfiguredTo() throws {
    let rebooting = try Harness(
      reboot: Self.rebootState, rebootOnTripleFault: true, [.exit(.shutdown(.tripleFault)), .exitOK])
    #expect(rebooting.vm.run().reason == .debugExit(value: 0))
    #expect(rebooting.vm.control.resetHistory == [.tripleFault])
    let stopping = try Harness(reboot: Self.rebootState, [.exit(.shutdown(.tripleFault)), .exitOK])
    guard case .shutdown(.tripleFault, _) = stopping.vm.run().reason else {
      Issue.record("a triple fault without rebootOnTripleFault must stop the run")
      return
    }
  }

  @Test func aFailedReloadEndsTheRunWithTheReason() throws {
    struct Gone: Error, CustomStringConvertible { var description: String { "the image is gone" } }
    let h = try Harness(reboot: { _ in throw Gone() }, [.portOut(0x92, 0x01), .exitOK])
    guard case .internalError(let report) = h.vm.run().reason else {
      Issue.record("expected internalError")
      return
    }
    #expect(report.reason.contains("the image is gone"))
  }

  @Test func theBusesAreFrozenOnceTheMachineRuns() throws {
    let h = try Harness([.exitOK])
    try h.vm.portBus.register(DebugExitDevice(), ports: 0x700...0x700)
    _ = h.vm.run()
    #expect(throws: PortIOBus.BusError.self) { try h.vm.portBus.register(DebugExitDevice(), ports: 0x701...0x701) }
    #expect(throws: MMIOBus.BusError.self) { try h.vm.mmioBus.register(Blank(), base: 0xD000_0000, size: 16) }
  }

  final class Blank: MMIODevice {
    func read(offset: UInt64, size: Int) -> UInt64 { 0 }
    func write(offset: UInt64, size: Int, value: UInt64) {}
  }

  /// A guest that never stops on its own: every step queues itself again.
  static func spinning() -> Step {
    Step { cpu in
      cpu.script.append(spinning())
      return .budgetExhausted
    }
  }

  /// Runs `h`'s machine on its own thread; `outcome()` waits for it.
  final class Background: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: RunOutcome?
    init(_ h: Harness) {
      let box = UncheckedBox(h)
      Thread {
        self.result = box.value.vm.run()
        self.done.signal()
      }.start()
    }
    func outcome() -> RunOutcome {
      done.wait()
      return result!
    }
  }

  struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
  }

  @Test func aPausedMachineParksItsRunnerUntilResumedAndAStopStillEndsIt() throws {
    let h = try Harness([Self.spinning()])
    let run = Background(h)
    let control = h.vm.control
    control.pause()
    #expect(control.waitUntilParked(1))
    #expect(control.isPaused && control.parkedCount == 1)
    // Resume and pause again at once, many times: however the runner's wake-up interleaves with
    // the new pause, it must park again (it once took the new pause as seen and ran on).
    for _ in 0..<200 {
      control.resume()
      control.pause()
      #expect(control.waitUntilParked(1))
    }
    h.vm.requestStop(.hostSignal(2))  // stop while parked
    #expect(run.outcome().reason == .hostSignal(2))
    #expect(control.parkedCount == 0)
  }

  @Test func everyExitIsCountedUnderItsReason() throws {
    let h = try Harness(Step.print("ab", port: 0x3F8) + [.exit(.rdtsc), .exitOK])
    let stats = h.vm.run().statistics
    let counts = Dictionary(uniqueKeysWithValues: stats.reasons.map { ($0.reason, $0.count) })
    #expect(counts["io-out"] == 3)
    #expect(counts["rdtsc"] == 1)
    #expect(stats.totalExits == 4)
  }
}

extension ScriptedVirtualCPU.Step {
  /// isa-debug-exit with value 0: ends the run with `.debugExit(value: 0)`.
  static var exitOK: Self { .portOut(0xF4, 0) }
}
