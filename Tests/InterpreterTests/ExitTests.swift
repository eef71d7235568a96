import Foundation
import TestHostSupport
import Testing
import VMM

@testable import Interpreter

/// The `interp` engine's exits and the VMM-facing controls: port I/O, MMIO with replay, HLT and
/// interrupt injection, budgets, kicks, hypercalls and trapped instructions.
@Suite(.requires(.guestToolchain)) struct ExitTests {
  @Test func portOutputAndInputCompletion() throws {
    let m = try GuestMachine(
      code: """
          mov dx, 0x3f8
          mov al, 0x41
          out dx, al
          in al, 0x60
          out 0x10, al
          hlt
        """)
    #expect(try m.vcpu.run(budget: 100) == .io(PortAccess(port: 0x3F8, size: 1, isWrite: true, value: 0x41)))
    try m.vcpu.complete(.none)
    #expect(try m.vcpu.run(budget: 100) == .io(PortAccess(port: 0x60, size: 1, isWrite: false)))
    try m.vcpu.complete(.value(0x5A))
    #expect(try m.vcpu.run(budget: 100) == .io(PortAccess(port: 0x10, size: 1, isWrite: true, value: 0x5A)))
  }

  @Test func mmioReadAndWriteExitAndReplayOnce() throws {
    let m = try GuestMachine(
      code: """
          mov ebx, 0xD0000000
          mov dword ptr [rbx], 0x12345678
          add eax, dword ptr [rbx + 4]       # read-modify: the read is answered, not repeated
          out 0x10, eax
          hlt
        """)
    #expect(
      try m.vcpu.run(budget: 100)
        == .mmio(MMIOAccess(address: 0xD000_0000, size: 4, isWrite: true, value: 0x1234_5678)))
    try m.vcpu.complete(.none)
    #expect(try m.vcpu.run(budget: 100) == .mmio(MMIOAccess(address: 0xD000_0004, size: 4, isWrite: false)))
    let before = m.vcpu.instructionsRetired
    try m.vcpu.complete(.value(0xCAFE_BABE))
    #expect(try m.vcpu.run(budget: 100) == .io(PortAccess(port: 0x10, size: 4, isWrite: true, value: 0xCAFE_BABE)))
    #expect(m.vcpu.instructionsRetired == before.map { $0 + 1 })
  }

  @Test func haltWaitsForAnInjectedInterrupt() throws {
    let m = try GuestMachine(
      code: """
          sti
          hlt
          out 0x11, al
          hlt
        .org 0x100
          mov al, 0x77
          out 0x10, al
          iretq
        """)
    try m.setGate(0x20, GuestMachine.codeBase + 0x100)
    #expect(try m.vcpu.run(budget: 100) == .halt)
    #expect(try m.vcpu.run(budget: 100) == .halt)  // still halted: nothing to wake it
    #expect(m.vcpu.readyForInterruptInjection)
    try m.vcpu.injectInterrupt(vector: 0x20)
    #expect(try m.vcpu.run(budget: 100) == .io(PortAccess(port: 0x10, size: 1, isWrite: true, value: 0x77)))
    try m.vcpu.complete(.none)
    #expect(try m.vcpu.run(budget: 100) == .io(PortAccess(port: 0x11, size: 1, isWrite: true, value: 0x77)))
  }

  @Test func stiShadowDelaysTheInterruptWindowByOneInstruction() throws {
    let m = try GuestMachine(
      code: """
          sti
          nop
        1: jmp 1b
        """)
    m.vcpu.requestInterruptWindow(true)
    #expect(try m.vcpu.run(budget: 1) == .budgetExhausted)  // STI retired: shadow
    #expect(!m.vcpu.readyForInterruptInjection)
    #expect(try m.vcpu.run(budget: 1) == .interruptWindow)  // once the NOP retired
    #expect(m.vcpu.instructionsRetired == 2)
  }

  @Test func budgetIsHonouredExactly() throws {
    let m = try GuestMachine(code: "1: jmp 1b")
    #expect(try m.vcpu.run(budget: 10_000) == .budgetExhausted)
    #expect(m.vcpu.instructionsRetired == 10_000)
    // The engine's counters: one decode, and even the first execution runs the fast form.
    let counters = Dictionary(uniqueKeysWithValues: m.vcpu.engineCounters.map { ($0.name, $0.value) })
    #expect(counters["decoded-instructions"] == 1)
    #expect(counters["fast-path-instructions"] == 10_000)
  }

  @Test func kickStopsARunningGuest() async throws {
    // The guest counts in memory forever; the counter going up is the evidence that it runs.
    let counter: UInt64 = 0x50_0000
    let m = try GuestMachine(code: "1: inc qword ptr [0x500000]\n  jmp 1b")
    nonisolated(unsafe) let vcpu = m.vcpu
    nonisolated(unsafe) let memory = m.memory
    // A kick before the run ends it before the first instruction.
    vcpu.kick()
    #expect(try vcpu.run(budget: nil) == .kicked)
    #expect((vcpu.instructionsRetired ?? 0) == 0)
    // Kick once, from another thread, only after the guest has been seen running: no sleeps, so
    // a loaded host changes how long this takes, not what it checks.
    let kicker = Thread {
      while ((try? memory.read(UInt64.self, at: counter)) ?? 0) == 0 { sched_yield() }
      vcpu.kick()
    }
    kicker.start()
    #expect(try vcpu.run(budget: nil) == .kicked)
    #expect((vcpu.instructionsRetired ?? 0) > 0)
    #expect(try memory.read(UInt64.self, at: counter) > 0)
  }

  @Test func vmcallIsAHypercallWithArgumentsAndResult() throws {
    let m = try GuestMachine(
      code: """
          mov eax, 7
          mov edi, 1
          mov esi, 2
          mov edx, 3
          mov r10d, 4
          mov r8d, 5
          mov r9d, 6
          vmcall
          out 0x10, eax
        """)
    #expect(try m.vcpu.run(budget: 100) == .hypercall)
    let call = HypercallDispatcher.decode(registers: try m.vcpu.registers(), special: try m.vcpu.specialRegisters())
    #expect(call == HypercallDispatcher.Call(number: 7, arguments: [1, 2, 3, 4, 5, 6], longMode: true))
    try m.vcpu.complete(.value(100))
    #expect(try m.vcpu.run(budget: 100) == .io(PortAccess(port: 0x10, size: 4, isWrite: true, value: 100)))
  }

  @Test func trappedCPUIDRDTSCMSRAndExceptions() throws {
    let m = try GuestMachine(
      code: """
          mov eax, 1
          cpuid
          out 0x10, eax
          rdtsc
          out 0x11, eax
          mov ecx, 0x4b564d00
          rdmsr
          out 0x12, eax
          ud2
        """)
    var controls = ExitControls()
    controls.cpuidExiting = true
    controls.rdtscExiting = true
    controls.msrReadExits = [0x4B56_4D00]
    controls.exceptionBitmap = 1 << 6
    m.vcpu.exitControls = controls
    #expect(try m.vcpu.run(budget: 100) == .cpuid(leaf: 1, subleaf: 0))
    try m.vcpu.complete(.cpuid(eax: 0x1234, ebx: 0, ecx: 0, edx: 0))
    #expect(try m.vcpu.run(budget: 100) == .io(PortAccess(port: 0x10, size: 4, isWrite: true, value: 0x1234)))
    try m.vcpu.complete(.none)
    #expect(try m.vcpu.run(budget: 100) == .rdtsc)
    try m.vcpu.complete(.value(0x55))
    #expect(try m.vcpu.run(budget: 100) == .io(PortAccess(port: 0x11, size: 4, isWrite: true, value: 0x55)))
    try m.vcpu.complete(.none)
    #expect(try m.vcpu.run(budget: 100) == .msrRead(index: 0x4B56_4D00))
    try m.vcpu.complete(.value(0x66))
    #expect(try m.vcpu.run(budget: 100) == .io(PortAccess(port: 0x12, size: 4, isWrite: true, value: 0x66)))
    try m.vcpu.complete(.none)
    #expect(try m.vcpu.run(budget: 100) == .exception(vector: 6, errorCode: nil))
    #expect(m.vcpu.cpu.bytesAtRIP().prefix(2) == [0x0F, 0x0B])  // state as before the UD2
  }

  @Test func deterministicTSCFollowsTheInstructionCount() throws {
    let m = try GuestMachine(
      code: """
          nop
          nop
          rdtsc
          out 0x10, eax
        """)
    #expect(try m.vcpu.run(budget: 100) == .io(PortAccess(port: 0x10, size: 4, isWrite: true, value: 2)))
  }

  @Test func untrappedCPUIDAdvertisesLongModeAndTheHypervisor() throws {
    let m = try GuestMachine(
      code: """
          mov eax, 0x80000001
          cpuid
          mov eax, edx
          out 0x10, eax
          mov eax, 0x40000000
          cpuid
          mov eax, ebx
          out 0x11, eax
          hlt
        """)
    let (_, outputs) = try m.runRecordingOutputs(budget: 100)
    #expect(outputs.count == 2)
    #expect(outputs.first.map { $0.1 & (1 << 29) != 0 } == true)  // LM
    #expect(outputs.last?.1 == 0x7669_7254)  // "Triv"
  }
}

@Suite struct InstructionClockTests {
  @Test func countsInstructionsAndSkipsForwardOnly() {
    var count: UInt64 = 10
    let clock = InstructionClock(nanosecondsPerInstruction: 2) { count }
    #expect(clock.nanoseconds == 20)
    clock.advance(to: 100)
    #expect(clock.nanoseconds == 100)
    clock.advance(to: 50)
    #expect(clock.nanoseconds == 100)
    count = 15
    #expect(clock.nanoseconds == 110)
  }
}

@Suite(.requires(.guestToolchain)) struct ExternalWriteTests {
  @Test func codeWrittenBehindTheCPUsBackIsRedecodedAfterTheNote() throws {
    let m = try GuestMachine(
      code: """
        1:
          mov eax, 1
          out 0x10, eax
          jmp 1b
        """)
    #expect(try m.vcpu.run(budget: 100) == .io(PortAccess(port: 0x10, size: 4, isWrite: true, value: 1)))
    try m.vcpu.complete(.none)
    try m.memory.write(GuestMachine.codeBase + 1, bytes: [2])  // the immediate of MOV EAX
    m.vcpu.cpu.noteGuestMemoryWritten(physical: GuestMachine.codeBase + 1, length: 1)
    #expect(try m.vcpu.run(budget: 100) == .io(PortAccess(port: 0x10, size: 4, isWrite: true, value: 2)))
  }
}

@Suite(.requires(.guestToolchain)) struct CompletionTests {
  @Test func aWriteSplitAcrossTwoDevicePagesReportsEveryByteOnce() throws {
    let m = try GuestMachine(
      code: """
          mov rax, 0x0807060504030201
          mov ebx, 0xD0000FFC
          mov qword ptr [rbx], rax
          hlt
        """)
    var writes: [MMIOAccess] = []
    while case .mmio(let access) = try m.vcpu.run(budget: 100) {
      writes.append(access)
      try m.vcpu.complete(.none)
      try m.vcpu.complete(.value(99))  // a stray completion changes nothing
    }
    #expect(writes.map(\.address) == (0..<8).map { 0xD000_0FFC + $0 })
    #expect(writes.map(\.value) == Array(1...8))
    #expect(writes.allSatisfy { $0.isWrite && $0.size == 1 })
  }
}

@Suite(.requires(.guestToolchain)) struct SplitReadTests {
  @Test func aReadSplitAcrossDevicePagesKeepsOnlyEachAnswersByte() throws {
    let m = try GuestMachine(
      code: """
          mov ebx, 0xD0000FFE
          mov eax, dword ptr [rbx]
          out 0x10, eax
        """)
    var reads = 0
    while case .mmio(let access) = try m.vcpu.run(budget: 100) {
      reads += 1
      try m.vcpu.complete(.value(0xFFFF_FF00 | UInt64(access.address & 0xFF)))  // devices answer wide
    }
    #expect(reads == 4)
    #expect(try m.vcpu.registers().rax & 0xFFFF_FFFF == 0x0100_FFFE)
  }
}

@Suite(.requires(.guestToolchain)) struct DeterministicClockTests {
  @Test func theEngineClockIsTheInstructionCountAndRepeats() throws {
    func run() throws -> [UInt32] {
      let m = try GuestMachine(
        code: """
            mov ecx, 100
          1:
            dec ecx
            jnz 1b
            rdtsc
            out 0x10, eax
            rdtscp
            out 0x11, eax
            hlt
          """)
      let (_, outputs) = try m.runRecordingOutputs(budget: 10_000)
      #expect(m.vcpu.clock.nanoseconds == m.vcpu.instructionsRetired)
      return outputs.map(\.1)
    }
    let first = try run()
    let second = try run()
    #expect(first == second)
    #expect(first == [201, 203])  // 1 + 2 * 100 instructions before the first RDTSC
  }
}
