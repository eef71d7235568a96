import Testing

@testable import VMM

/// The local APIC's registers, priorities, EOI, timer and ICR.
@Suite struct LocalAPICTests {
  func enabled(_ id: UInt8 = 0, clock: ManualClock = ManualClock()) -> LocalAPIC {
    let apic = LocalAPIC(id: id, clock: clock)
    apic.write(offset: 0xF0, size: 4, value: 0x1FF)
    return apic
  }

  @Test func resetValuesAndIdentity() {
    let apic = LocalAPIC(id: 3, clock: ManualClock())
    #expect(apic.read(offset: 0x20, size: 4) == 3 << 24)
    #expect(apic.read(offset: 0x30, size: 4) == 0x5_0014)
    #expect(apic.read(offset: 0xF0, size: 4) == 0xFF)  // software-disabled, spurious vector 0xFF
    #expect(apic.read(offset: 0xE0, size: 4) == 0xFFFF_FFFF)
    #expect(apic.read(offset: 0x350, size: 4) == 0x1_0000)  // LINT0 masked
    #expect(!apic.softwareEnabled)
  }

  @Test func higherVectorsFirstAndTaskPriorityHoldsLowerClassesBack() {
    let apic = enabled()
    apic.accept(vector: 0x31)
    apic.accept(vector: 0x52)
    #expect(apic.read(offset: 0x200 + 0x10 * (0x52 >> 5), size: 4) & (1 << (0x52 & 31)) != 0)  // IRR
    #expect(apic.acknowledge() == 0x52)
    #expect(apic.read(offset: 0xA0, size: 4) == 0x50)  // PPR: the in-service class
    #expect(apic.acknowledge() == nil)  // 0x31 is below the in-service class
    apic.write(offset: 0xB0, size: 4, value: 0)  // EOI
    apic.write(offset: 0x80, size: 4, value: 0x40)  // TPR class 4
    #expect(!apic.hasDeliverableInterrupt)
    apic.write(offset: 0x80, size: 4, value: 0)
    #expect(apic.acknowledge() == 0x31)
  }

  @Test func illegalVectorsSetTheErrorRegister() {
    let apic = enabled()
    apic.accept(vector: 5)
    #expect(!apic.hasDeliverableInterrupt)
    apic.write(offset: 0x280, size: 4, value: 0)  // the ESR shows errors after a write
    #expect(apic.read(offset: 0x280, size: 4) == 0x40)
  }

  @Test func oneShotAndPeriodicTimer() {
    let clock = ManualClock()
    let apic = enabled(clock: clock)
    apic.write(offset: 0x3E0, size: 4, value: 0xB)  // divide by 1: 1 ns per tick
    apic.write(offset: 0x320, size: 4, value: 0x40)  // one-shot, vector 0x40
    apic.write(offset: 0x380, size: 4, value: 1000)
    #expect(apic.nextDeadline == 1000)
    clock.nanoseconds = 400
    #expect(apic.read(offset: 0x390, size: 4) == 600)
    clock.nanoseconds = 1000
    apic.advance(to: 1000)
    #expect(apic.acknowledge() == 0x40)
    #expect(apic.nextDeadline == nil)
    apic.write(offset: 0xB0, size: 4, value: 0)
    apic.write(offset: 0x320, size: 4, value: 0x2_0041)  // periodic, vector 0x41
    apic.write(offset: 0x380, size: 4, value: 100)
    clock.nanoseconds = 1250
    apic.advance(to: 1250)
    #expect(apic.acknowledge() == 0x41)
    #expect(apic.nextDeadline == 1300)
  }

  @Test func aMaskedTimerDoesNotInterrupt() {
    let clock = ManualClock()
    let apic = enabled(clock: clock)
    apic.write(offset: 0x3E0, size: 4, value: 0xB)
    apic.write(offset: 0x320, size: 4, value: 0x1_0040)
    apic.write(offset: 0x380, size: 4, value: 10)
    clock.nanoseconds = 10
    apic.advance(to: 10)
    #expect(!apic.hasDeliverableInterrupt)
  }

  @Test func anICRWriteSendsTheIPI() {
    let apic = enabled(2)
    var sent: [InterProcessorInterrupt] = []
    apic.send = { sent.append($0) }
    apic.write(offset: 0x310, size: 4, value: 0x0100_0000)
    apic.write(offset: 0x300, size: 4, value: 0x4630)  // SIPI vector 0x30, level assert
    #expect(sent.count == 1)
    #expect(sent[0].source == 2 && sent[0].deliveryMode == 6 && sent[0].vector == 0x30 && sent[0].destination == 1)
    #expect(!sent[0].logical && sent[0].shorthand == 0)
    #expect(InterProcessorInterrupt(source: 0, icrLow: 0x8500, icrHigh: 0).isINITDeassert)
  }
}
