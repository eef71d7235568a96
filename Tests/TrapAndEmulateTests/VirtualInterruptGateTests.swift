import Testing
import TrapAndEmulate

/// The trap engine's virtual interrupt acceptance on its own: held vectors and their order, and
/// the NMI latch with its blocking until IRET.
@Suite struct VirtualInterruptGateTests {
  /// Held vectors wait (a vector held twice is one) and go highest first, whatever their class:
  /// the task priority is the VMM's local APIC's to apply, before it injects.
  @Test func heldVectorsGoHighestFirst() {
    var gate = VirtualInterruptGate()
    #expect(!gate.holdsInterrupt && gate.nextVector == nil)
    gate.hold(0x20)
    #expect(gate.holdsInterrupt && gate.nextVector == 0x20)
    gate.hold(0x41)
    gate.hold(0xC3)
    gate.hold(0x41)  // the same vector again is still one
    #expect(gate.nextVector == 0xC3)
    gate.take(0xC3)
    #expect(gate.nextVector == 0x41)
    gate.take(0x41)
    #expect(gate.nextVector == 0x20)
    gate.take(0x20)
    #expect(!gate.holdsInterrupt && gate.nextVector == nil)
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
