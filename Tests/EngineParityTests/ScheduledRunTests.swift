import Foundation
import Interpreter
import KVMEngine
import Scheduling
import TestHostSupport
import Testing
import Translator
import VMM

/// Real guests under a shared pCPU pool (`MachineConfiguration.scheduling`), on every engine.
/// Nothing here depends on timing: the tests assert what must hold however the host schedules
/// the threads — the run ends, every vCPU that has work runs, pinning holds, a pCPU never has two
/// vCPUs at once, a vCPU that idles in HLT or waits for its start-up IPI holds no pCPU.
@Suite struct ScheduledRunTests {
  /// Short slices, so a vCPU waiting for a sibling's slice to end waits milliseconds.
  static let parameters = SchedulerParameters(timeslice: 2_000_000, rateLimit: 200_000, accountingPeriod: 6_000_000)

  static func engine(_ name: String) throws -> any Engine {
    switch name {
    case "dbt": return TranslatorEngine()
    case "kvm": return try KVMEngine()
    default: return InterpreterEngine()
    }
  }

  /// `SMPStartupTests`' guest (the BSP starts the APs, each AP counts itself and spins in a PAUSE
  /// loop for ever, the BSP exits once all counted) with `cpus` vCPUs on a pool of `pcpus`.
  static func smpRun(
    engine: String, cpus: Int, pcpus: Int, pins: [Int: Set<Int>] = [:]
  ) throws -> (RunOutcome, UInt32, SchedulingSession) {
    let session = SchedulingSession(pcpus: pcpus, parameters: parameters, keepingEvents: true)
    let memory = try GuestMemory(ramSize: 2 << 20)
    try memory.write(0x10000, bytes: SMPStartupTests.bsp)
    try memory.write(0x8000, bytes: SMPStartupTests.ap)
    try memory.write(UInt32(cpus - 1), at: 0x9004)
    let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000)
    var configuration = MachineConfiguration(timeoutSeconds: 120)
    configuration.cpuCount = cpus
    configuration.scheduling = session.addMachine(vcpuCount: cpus, pins: pins)
    let machine = try Machine(memory: memory, boot: boot, engine: try Self.engine(engine), configuration: configuration)
    session.start()
    let outcome = machine.run()
    session.finish()
    return (outcome, try memory.read(UInt32.self, at: 0x9000), session)
  }

  /// Per pCPU, the run intervals never overlap; every interval is on a pCPU its vCPU may use.
  static func checkInvariants(_ session: SchedulingSession) {
    let trace = session.recordedTrace
    for p in 0..<session.scheduler.pcpuCount {
      let lane = trace.intervals.filter { $0.pcpu == p }.sorted { $0.start < $1.start }
      for (a, b) in zip(lane, lane.dropFirst()) {
        #expect(a.end <= b.start, "pCPU \(p): \(a.vcpu) and \(b.vcpu) overlap")
      }
    }
    for interval in trace.intervals {
      if let pin = session.pins[interval.vcpu] {
        #expect(pin.contains(interval.pcpu), "\(interval.vcpu) ran on pCPU \(interval.pcpu) outside \(pin)")
      }
    }
  }

  @Test(arguments: ["interp", "dbt"])
  func fourVCPUsOnOnePCPUAllRunAndTheRunEnds(engine: String) throws {
    let (outcome, started, session) = try Self.smpRun(engine: engine, cpus: 4, pcpus: 1)
    #expect(outcome.reason == .debugExit(value: 0), "\(outcome.reason.description)")
    #expect(started == 3, "every AP ran and counted itself")
    Self.checkInvariants(session)
    let ran = Set(session.recordedTrace.intervals.map(\.vcpu))
    #expect(ran == Set(session.scheduler.vcpus), "every vCPU was dispatched: \(ran.sorted())")
  }

  @Test(.requires(.kvm)) func kvmTwoVCPUsOnOnePCPUBothRunAndTheRunEnds() throws {
    let (outcome, started, session) = try Self.smpRun(engine: "kvm", cpus: 2, pcpus: 1)
    #expect(outcome.reason == .debugExit(value: 0), "\(outcome.reason.description)")
    #expect(started == 1)
    Self.checkInvariants(session)
    #expect(Set(session.recordedTrace.intervals.map(\.vcpu)) == Set(session.scheduler.vcpus))
  }

  /// vCPUs pinned to pCPUs 1 and 2 of 3 (two on each) never run on pCPU 0, which stays idle.
  @Test func pinnedVCPUsRunOnlyOnTheirPCPUs() throws {
    let pins: [Int: Set<Int>] = [0: [1], 1: [1], 2: [2], 3: [2]]
    let (outcome, started, session) = try Self.smpRun(engine: "interp", cpus: 4, pcpus: 3, pins: pins)
    #expect(outcome.reason == .debugExit(value: 0), "\(outcome.reason.description)")
    #expect(started == 3)
    Self.checkInvariants(session)
    #expect(!session.recordedTrace.intervals.contains { $0.pcpu == 0 }, "nobody may use pCPU 0")
  }

  /// APs never started wait for their SIPI and hold no pCPU: only the BSP is ever dispatched.
  @Test func vCPUsWaitingForStartUpTakeNoPCPU() throws {
    let session = SchedulingSession(pcpus: 1, parameters: Self.parameters, keepingEvents: true)
    let memory = try GuestMemory(ramSize: 2 << 20)
    // A short loop, then isa-debug-exit.
    let code: [UInt8] = [0xB9, 0x00, 0x10, 0x00, 0x00, 0xF3, 0x90, 0xE2, 0xFC, 0xB0, 0x00, 0xE6, 0xF4, 0xF4]
    try memory.write(0x10000, bytes: code)
    let boot = try SmallGuestBoot.prepare(memory: memory, entry: 0x10000)
    var configuration = MachineConfiguration(timeoutSeconds: 120)
    configuration.cpuCount = 3
    configuration.scheduling = session.addMachine(vcpuCount: 3)
    let machine = try Machine(memory: memory, boot: boot, engine: InterpreterEngine(), configuration: configuration)
    session.start()
    let outcome = machine.run()
    session.finish()
    #expect(outcome.reason == .debugExit(value: 0), "\(outcome.reason.description)")
    let ran = Set(session.recordedTrace.intervals.map(\.vcpu))
    #expect(ran == [VCPUID(vm: 0, vcpu: 0)])
  }

  /// A guest that waits in HLT for five ticks of its local APIC timer (10 ms apart) beside a
  /// CPU-bound VM on one pCPU: the idle VM gets the pCPU back at every tick and finishes, and
  /// between each of its blocks and the wake-up that follows it holds no pCPU.
  static let idleGuest = #"""
    main:
      GATE 0x40, timer_handler
      movq $0xFEE00000, %rbx
      movl $0x1FF, 0xF0(%rbx)
      movl $0x0B, 0x3E0(%rbx)
      movl $0x20040, 0x320(%rbx)
      movl $10000000, 0x380(%rbx)
    wait:
      cli
      cmpl $5, 0x9100
      jae done
      sti
      hlt
      jmp wait
    done:
      EXIT
    timer_handler:
      incl 0x9100
      movl $0, 0xB0(%rbx)
      iretq
    """#

  @Test(arguments: ["interp", "dbt"])
  func anIdleGuestHoldsNoPCPUWhileItHalts(engine: String) throws {
    let session = SchedulingSession(pcpus: 1, parameters: Self.parameters, keepingEvents: true)
    let idleImage = try InlineGuestAssembler.assemble(APICTestGuest.prelude + "\n" + Self.idleGuest)
    let idleMemory = try GuestMemory(ramSize: 2 << 20)
    try idleMemory.write(0x10000, bytes: idleImage)
    var idleConfiguration = MachineConfiguration(timeoutSeconds: 120)
    idleConfiguration.firmwareConfigurationDevice = false
    idleConfiguration.scheduling = session.addMachine(vcpuCount: 1)
    let idle = try Machine(
      memory: idleMemory, boot: try SmallGuestBoot.prepare(memory: idleMemory, entry: 0x10000),
      engine: try Self.engine(engine), configuration: idleConfiguration)
    // The CPU-bound VM: `jmp $` for ever (stopped by the test once the idle VM is done).
    let busyMemory = try GuestMemory(ramSize: 2 << 20)
    try busyMemory.write(0x10000, bytes: [0xEB, 0xFE])
    var busyConfiguration = MachineConfiguration(timeoutSeconds: 120)
    busyConfiguration.scheduling = session.addMachine(vcpuCount: 1)
    let busy = try Machine(
      memory: busyMemory, boot: try SmallGuestBoot.prepare(memory: busyMemory, entry: 0x10000),
      engine: try Self.engine(engine), configuration: busyConfiguration)
    session.start()
    let busyDone = DispatchSemaphore(value: 0)
    let busyBox = MachineBox(busy)
    Thread.detachNewThread {
      _ = busyBox.machine.run()
      busyDone.signal()
    }
    let outcome = idle.run()
    busy.control.requestStop(.hostSignal(15))
    #expect(busyDone.wait(timeout: .now() + 120) == .success, "the busy VM stops")
    session.finish()
    #expect(outcome.reason == .debugExit(value: 0), "\(outcome.reason.description)")
    Self.checkInvariants(session)
    let trace = session.recordedTrace
    let idleVCPU = VCPUID(vm: 0, vcpu: 0)
    // Blocked stretches of the idle vCPU: from each `blocked` to the next `woke`.
    var blockedSince: UInt64?
    var stretches: [(UInt64, UInt64)] = []
    for event in trace.events {
      switch event {
      case .blocked(idleVCPU, let t): blockedSince = t
      case .woke(idleVCPU, let t):
        if let s = blockedSince { stretches.append((s, t)) }
        blockedSince = nil
      default: break
      }
    }
    #expect(!stretches.isEmpty, "the idle guest blocked in HLT")
    for (from, to) in stretches {
      #expect(!trace.intervals.contains { $0.vcpu == idleVCPU && $0.start < to && $0.end > from })
    }
    #expect(trace.intervals.contains { $0.vcpu == VCPUID(vm: 1, vcpu: 0) }, "the busy VM ran")
  }

  /// A machine reset under the pool (the BSP reboots the machine once, and the APs start again):
  /// the parked APs hold no pCPU while the BSP carries the reset out, and the run ends.
  @Test func aMachineResetUnderThePoolEnds() throws {
    let session = SchedulingSession(pcpus: 1, parameters: Self.parameters, keepingEvents: true)
    let memory = try GuestMemory(ramSize: 2 << 20)
    try memory.write(0x10000, bytes: SMPStartupTests.rebootingBSP)
    try memory.write(0x8000, bytes: SMPStartupTests.ap)
    try memory.write(UInt32(2), at: 0x9004)
    var configuration = MachineConfiguration(timeoutSeconds: 120)
    configuration.cpuCount = 3
    configuration.reboot = { memory in try SmallGuestBoot.prepare(memory: memory, entry: 0x10000) }
    configuration.scheduling = session.addMachine(vcpuCount: 3)
    let machine = try Machine(
      memory: memory, boot: try SmallGuestBoot.prepare(memory: memory, entry: 0x10000), engine: InterpreterEngine(),
      configuration: configuration)
    session.start()
    let outcome = machine.run()
    session.finish()
    #expect(outcome.reason == .debugExit(value: 0), "\(outcome.reason.description)")
    #expect(try memory.read(UInt32.self, at: 0x9008) == 2 && machine.control.resetCount == 1)
    Self.checkInvariants(session)
  }

  /// Four vCPUs that never stop spinning on one pCPU: a pause parks all four (three of them were
  /// waiting for the pCPU: the pause calls their wait off), and then none holds the pCPU; after
  /// `resume` a stop ends the run.
  @Test(arguments: ["interp", "dbt"])
  func aPauseParksVCPUsWaitingForAPCPUAndTheyHoldNone(engine: String) throws {
    let session = SchedulingSession(pcpus: 1, parameters: Self.parameters, keepingEvents: true)
    let memory = try GuestMemory(ramSize: 2 << 20)
    try memory.write(0x10000, bytes: SMPStartupTests.bsp)
    try memory.write(0x8000, bytes: SMPStartupTests.ap)
    try memory.write(UInt32(1000), at: 0x9004)  // more APs than there are: the BSP spins for ever
    var configuration = MachineConfiguration(timeoutSeconds: 120)
    configuration.cpuCount = 4
    configuration.scheduling = session.addMachine(vcpuCount: 4)
    let machine = try Machine(
      memory: memory, boot: try SmallGuestBoot.prepare(memory: memory, entry: 0x10000),
      engine: try Self.engine(engine), configuration: configuration)
    session.start()
    let done = DispatchSemaphore(value: 0)
    let box = MachineBox(machine)
    Thread.detachNewThread {
      _ = box.machine.run()
      done.signal()
    }
    // Wait (without a time limit on the guest's progress) until the three APs counted themselves.
    while try memory.read(UInt32.self, at: 0x9000) < 3 { usleep(1000) }
    machine.control.pause()
    #expect(machine.control.waitUntilParked(4))
    #expect(session.pool.holder(of: 0) == nil, "parked vCPUs hold no pCPU")
    machine.control.resume()
    machine.control.requestStop(.hostSignal(15))
    #expect(done.wait(timeout: .now() + 120) == .success, "the run ends")
    session.finish()
    Self.checkInvariants(session)
  }
}

/// A machine handed to another thread.
struct MachineBox: @unchecked Sendable {
  let machine: Machine
  init(_ machine: Machine) { self.machine = machine }
}
