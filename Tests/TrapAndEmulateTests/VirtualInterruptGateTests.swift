import Testing
import TrapAndEmulate

/// The trap engine's virtual interrupt acceptance on its own: CR8 against the vector's priority
/// class, held vectors and their order, and the NMI latch with its blocking until IRET.
@Suite struct VirtualInterruptGateTests {
  /// A vector is admitted when its class (bits 7:4) is above CR8; CR8 = 0 admits every vector.
  @Test func theTaskPriorityHoldsClassesAtOrBelowIt() {
    #expect(VirtualInterruptGate.admits(vector: 0x20, taskPriority: 0))
    #expect(VirtualInterruptGate.admits(vector: 0x08, taskPriority: 0))
    #expect(VirtualInterruptGate.admits(vector: 0x30, taskPriority: 2))
    #expect(!VirtualInterruptGate.admits(vector: 0x2F, taskPriority: 2))
    #expect(!VirtualInterruptGate.admits(vector: 0x20, taskPriority: 2))
    #expect(!VirtualInterruptGate.admits(vector: 0x10, taskPriority: 2))
    #expect(!VirtualInterruptGate.admits(vector: 0xFF, taskPriority: 15))
    #expect(VirtualInterruptGate.admits(vector: 0xFF, taskPriority: 14))
  }

  /// A held vector stays held (not lost) while CR8 covers it and becomes deliverable when CR8
  /// drops below its class; the highest vector goes first; lowering CR8 is noticed.
  @Test func heldVectorsWaitForTheTaskPriorityAndGoHighestFirst() {
    var gate = VirtualInterruptGate()
    #expect(!gate.holdsInterrupt && gate.deliverableVector(taskPriority: 0) == nil)
    gate.hold(0x20)
    #expect(gate.holdsInterrupt)
    #expect(gate.deliverableVector(taskPriority: 15) == nil)
    #expect(gate.deliverableVector(taskPriority: 2) == nil)
    #expect(gate.deliverableVector(taskPriority: 1) == 0x20)
    gate.hold(0x41)
    gate.hold(0xC3)
    gate.hold(0x41)  // the same vector again is still one
    #expect(gate.deliverableVector(taskPriority: 12) == nil)
    #expect(gate.deliverableVector(taskPriority: 11) == 0xC3)
    gate.take(0xC3)
    #expect(gate.deliverableVector(taskPriority: 4) == nil)
    #expect(gate.deliverableVector(taskPriority: 3) == 0x41)
    gate.take(0x41)
    #expect(gate.deliverableVector(taskPriority: 0) == 0x20)
    gate.take(0x20)
    #expect(!gate.holdsInterrupt)
    let lowered = [15, 15, 1, 3].map { gate.noteTaskPriority($0) }
    #expect(lowered == [false, false, true, false])
  }

  /// One NMI is latched; after its delivery further NMIs wait until IRET.
  @Test func nmisAreBlockedFromDeliveryUntilIRET() {
    var gate = VirtualInterruptGate()
    #expect(!gate.nmiDeliverable)
    gate.latchNMI()
    gate.latchNMI()
    #expect(gate.nmiDeliverable)
    gate.takeNMI()
    #expect(gate.nmiBlocked && !gate.nmiPending)
    gate.latchNMI()
    #expect(gate.nmiPending && !gate.nmiDeliverable)
    gate.noteInterruptReturn()
    #expect(gate.nmiDeliverable)
    gate.takeNMI()
    #expect(!gate.nmiDeliverable && !gate.nmiPending)
    gate.noteInterruptReturn()
    #expect(!gate.nmiDeliverable && !gate.nmiBlocked)
  }
}
