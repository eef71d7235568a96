import Testing

@testable import VMM

/// CR8 and the local APIC's TPR are one register (SDM vol. 3, "Task Priority in IA-32e Mode"):
/// the APIC's view of CR8 on its own, and the runner carrying the value both ways between a
/// (scripted) vCPU and its APIC, with the task-priority threshold that lets a lowered CR8 in.
@Suite struct TaskPriorityLinkTests {
  typealias Step = ScriptedVirtualCPU.Step

  // MARK: The APIC's side

  func enabledAPIC() -> LocalAPIC {
    let apic = LocalAPIC(id: 0, clock: ManualClock())
    apic.write(offset: 0xF0, size: 4, value: 0x1FF)
    return apic
  }

  /// CR8 is TPR bits 7:4; a CR8 write loads them and clears bits 3:0, and the PPR follows.
  @Test func theTaskPriorityClassIsTheTPRsHighNibble() {
    let apic = enabledAPIC()
    apic.write(offset: 0x80, size: 4, value: 0x5A)
    #expect(apic.taskPriorityClass == 5)
    apic.taskPriorityClass = 3
    #expect(apic.read(offset: 0x80, size: 4) == 0x30)
    #expect(apic.read(offset: 0xA0, size: 4) == 0x30)  // PPR: the TPR (nothing in service)
    apic.accept(vector: 0x31)
    #expect(!apic.hasDeliverableInterrupt)  // class 3 is not above CR8 = 3
    apic.taskPriorityClass = 2
    #expect(apic.hasDeliverableInterrupt)
  }

  /// The threshold is the class of the highest waiting vector while only the TPR holds it: 0 when
  /// nothing waits, when it is deliverable, and when the class in service holds it anyway.
  @Test func theThresholdIsTheClassOnlyTheTPRHolds() {
    let apic = enabledAPIC()
    apic.taskPriorityClass = 4
    #expect(apic.taskPriorityThreshold == 0)  // nothing waits
    apic.accept(vector: 0x31)
    #expect(apic.taskPriorityThreshold == 3)
    apic.accept(vector: 0x45)
    #expect(apic.taskPriorityThreshold == 4)
    apic.taskPriorityClass = 3
    #expect(apic.taskPriorityThreshold == 0)  // 0x45 is deliverable
    #expect(apic.acknowledge() == 0x45)
    #expect(apic.taskPriorityThreshold == 0)  // 0x31 waits below the class in service
    apic.write(offset: 0xB0, size: 4, value: 0)  // EOI
    #expect(apic.taskPriorityThreshold == 3)
  }

  // MARK: The runner

  final class Seen: @unchecked Sendable {
    var responses: [ExitResponse?] = []
    var taskPriorities: [UInt8] = []
    var thresholds: [UInt8] = []
    var delivered: [[UInt8]] = []
    var machine: Machine?
  }

  /// One step of the guest: a MOV to CR8 (`cr8`) and an edge on 8259 line `irq` before it exits.
  struct GuestStep {
    var cr8: UInt8?
    var irq: Int?
    var exit: VMExit
    init(cr8: UInt8? = nil, irq: Int? = nil, _ exit: VMExit) {
      self.cr8 = cr8
      self.irq = irq
      self.exit = exit
    }
  }

  /// Runs a scripted vCPU (IF set) through `steps`; records what each step saw of the VMM's last
  /// answer, the vCPU's CR8, its threshold and the vectors delivered so far. Ends with a debug
  /// exit.
  static func run(_ steps: [GuestStep]) throws -> (Machine, Seen) {
    let seen = Seen()
    func record(_ cpu: ScriptedVirtualCPU) {
      seen.responses.append(cpu.lastResponse)
      seen.taskPriorities.append(cpu.taskPriority)
      seen.thresholds.append(cpu.taskPriorityThreshold)
      seen.delivered.append(cpu.deliveredVectors)
    }
    var script: [Step] = steps.map { step in
      Step { cpu in
        record(cpu)
        if let cr8 = step.cr8 { cpu.taskPriority = cr8 }
        if let irq = step.irq, let machine = seen.machine {
          machine.deviceLock.locked {
            machine.pic?.setIRQ(irq, level: true)
            machine.pic?.setIRQ(irq, level: false)
          }
        }
        return step.exit
      }
    }
    script.append(
      Step { cpu in
        record(cpu)
        return .io(PortAccess(port: 0xF4, size: 1, isWrite: true, value: 0))
      })
    let engine = ScriptedEngine(script: script)
    var registers = Registers()
    registers.rflags = 0x202
    let machine = try Machine(
      memory: try GuestMemory(ramSize: 1 << 20),
      boot: BootState(mode: .real, registers: registers, specialRegisters: SpecialRegisters()),
      engine: engine, configuration: MachineConfiguration(timeoutSeconds: 60))
    seen.machine = machine
    #expect(machine.run().reason == .debugExit(value: 0))
    seen.machine = nil
    return (machine, seen)
  }

  static func apicWrite(_ offset: UInt64, _ value: UInt64) -> VMExit {
    .mmio(MMIOAccess(address: LocalAPIC.base + offset, size: 4, isWrite: true, value: value))
  }

  static func apicRead(_ offset: UInt64) -> VMExit {
    .mmio(MMIOAccess(address: LocalAPIC.base + offset, size: 4, isWrite: false))
  }

  static func out(_ port: UInt16, _ value: UInt32) -> VMExit {
    .io(PortAccess(port: port, size: 1, isWrite: true, value: value))
  }

  /// A MOV to CR8 is seen in the APIC's TPR and PPR at the next exit.
  @Test func aCR8WriteIsSeenInTheTPRAndPPR() throws {
    let (machine, seen) = try Self.run([
      GuestStep(cr8: 6, Self.apicRead(0x80)),
      GuestStep(Self.apicRead(0xA0)),
      GuestStep(cr8: 0, Self.apicRead(0x80)),
    ])
    #expect(Array(seen.responses.dropFirst()) == [.value(0x60), .value(0x60), .value(0)])
    #expect(machine.runners[0].lapic.taskPriorityClass == 0)
  }

  /// A TPR write through the register page or x2APIC MSR 808H is the vCPU's CR8 before it runs
  /// on; bits 3:0 of the TPR do not reach CR8, and stay in the TPR while CR8 is left alone.
  @Test func aTPRWriteIsSeenInCR8() throws {
    let (machine, seen) = try Self.run([
      GuestStep(Self.apicWrite(0x80, 0x7C)),
      GuestStep(Self.apicRead(0x80)),
      GuestStep(.msrWrite(index: 0x1B, value: 0xFEE0_0D00)),  // x2APIC mode
      GuestStep(.msrWrite(index: 0x808, value: 0x20)),
      GuestStep(.msrRead(index: 0x808)),
    ])
    #expect(seen.taskPriorities == [0, 7, 7, 7, 2, 2])
    #expect(seen.responses[2] == .value(0x7C))
    #expect(seen.responses[5] == .value(0x20))
    #expect(machine.runners[0].lapic.taskPriorityClass == 2)
  }

  /// A self-IPI CR8 holds arms the threshold and is not injected; lowering CR8 below it (the
  /// engine's `.interruptWindow`) delivers it at the next entry and disarms the threshold.
  @Test func loweringCR8BelowTheThresholdDeliversTheHeldVector() throws {
    let (_, seen) = try Self.run([
      GuestStep(Self.apicWrite(0xF0, 0x1FF)),
      GuestStep(cr8: 5, Self.apicWrite(0x300, 0x4_0031)),  // self-IPI, vector 0x31 (class 3)
      GuestStep(.budgetExhausted),
      GuestStep(cr8: 2, .interruptWindow),
    ])
    #expect(seen.thresholds == [0, 0, 3, 3, 0])
    #expect(seen.delivered == [[], [], [], [], [0x31]])
  }

  /// The 8259's interrupt (vector 0x24, class 2) reaches the vCPU through LINT0 (ExtINT) with
  /// CR8 = 15, while a self-IPI of class 3 stays held.
  @Test func cr8DoesNotHoldThe8259() throws {
    let (_, seen) = try Self.run([
      GuestStep(Self.apicWrite(0xF0, 0x1FF)),
      GuestStep(Self.apicWrite(0x350, 0x700)),  // LINT0: ExtINT
      GuestStep(Self.out(0x20, 0x11)),
      GuestStep(Self.out(0x21, 0x20)),  // vectors 0x20-0x27
      GuestStep(Self.out(0x21, 0x04)),
      GuestStep(Self.out(0x21, 0x01)),
      GuestStep(Self.out(0x21, 0xEF)),  // IRQ 4 only
      GuestStep(cr8: 15, Self.apicWrite(0x300, 0x4_0031)),
      GuestStep(irq: 4, .budgetExhausted),
      GuestStep(.budgetExhausted),
    ])
    #expect(seen.delivered.last == [0x24])
    #expect(seen.thresholds.last == 3)
  }
}
