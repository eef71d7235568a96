import Synchronization
import TestHostSupport
import Testing
import VMM

@testable import Interpreter

/// The machine's code-page stamps (`GuestMemory.codeWrites`) are the interpreter's: a write through
/// `GuestMemory` (a loader, a device) over code the vCPU has decoded is seen at the next fetch.
@Suite(.requires(.guestToolchain)) struct CodeWriteTrackerTests {
  @Test func aVMMWriteOverDecodedCodeIsExecutedNextTime() throws {
    let m = try GuestMachine(
      code: """
        start:
          mov eax, 1
          out 0x10, eax
          jmp start
        """)
    #expect(try m.vcpu.run(budget: 100) == .io(PortAccess(port: 0x10, size: 4, isWrite: true, value: 1)))
    try m.vcpu.complete(.none)
    #expect(try m.vcpu.run(budget: 100) == .io(PortAccess(port: 0x10, size: 4, isWrite: true, value: 1)))
    try m.vcpu.complete(.none)
    // The immediate of `mov eax, 1` is the byte after the opcode.
    let generation = m.memory.codeWrites.generation(ofPageHolding: GuestMachine.codeBase)
    try m.memory.write(GuestMachine.codeBase + 1, bytes: [2])
    #expect(m.memory.codeWrites.generation(ofPageHolding: GuestMachine.codeBase) != generation)
    #expect(try m.vcpu.run(budget: 100) == .io(PortAccess(port: 0x10, size: 4, isWrite: true, value: 2)))
  }
}

/// The stamp table itself.
@Suite struct CodeWriteTrackerTableTests {
  @Test func writesToPagesWithoutCodeLeaveTheirStampAlone() throws {
    let tracker = CodeWriteTracker()
    tracker.noteWrite(physical: 0x5000, length: 8)
    #expect(tracker.generation(ofPageHolding: 0x5000) == 0)
    tracker.markCode(page: 5)
    tracker.markCode(page: 6)
    tracker.noteWrite(physical: 0x5FFF, length: 2)  // crosses into page 6
    #expect(tracker.generation(ofPageHolding: 0x5000) == 1 && tracker.generation(ofPageHolding: 0x6000) == 1)
    let stillMarked = tracker.hasCode[CodeWriteTracker.slot(page: 5)].load(ordering: .relaxed)
    #expect(!stillMarked)
  }
}
