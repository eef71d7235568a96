import Testing

@testable import VMM

@Suite struct PICPairTests {
  let pic = PICPair()

  func out(_ port: UInt16, _ v: UInt8) { pic.write(port: port, size: 1, value: UInt32(v)) }
  func inb(_ port: UInt16) -> UInt8 { UInt8(pic.read(port: port, size: 1)) }

  /// The initialisation Linux and SeaBIOS perform: vectors 0x20/0x28, cascade, 8086 mode.
  func initialise(autoEOI: Bool = false) {
    out(0x20, 0x11)
    out(0x21, 0x20)
    out(0x21, 0x04)
    out(0x21, autoEOI ? 0x03 : 0x01)
    out(0xA0, 0x11)
    out(0xA1, 0x28)
    out(0xA1, 0x02)
    out(0xA1, autoEOI ? 0x03 : 0x01)
  }

  @Test func initSequenceSetsVectorsAndClearsMasks() {
    out(0x21, 0xFF)
    initialise()
    #expect(pic.vectorBases == (0x20, 0x28))
    #expect(inb(0x21) == 0)
    out(0x21, 0xFB)
    out(0xA1, 0xFF)
    #expect(inb(0x21) == 0xFB && inb(0xA1) == 0xFF)
  }

  @Test func edgeInterruptIsDeliveredOnceAndEOIed() {
    initialise()
    pic.setIRQ(0, level: true)
    pic.setIRQ(0, level: false)
    #expect(pic.hasPendingInterrupt)
    #expect(pic.acknowledge() == 0x20)
    #expect(!pic.hasPendingInterrupt)
    #expect(pic.acknowledge() == nil)
    #expect(pic.inServiceRegister == 0x0001)
    out(0x20, 0x20)  // non-specific EOI
    #expect(pic.inServiceRegister == 0)
  }

  @Test func maskedLinesAreHeldUntilUnmasked() {
    initialise()
    out(0x21, 0x02)
    pic.setIRQ(1, level: true)
    #expect(!pic.hasPendingInterrupt)
    #expect(pic.requestRegister == 0x0002)
    out(0x21, 0x00)
    #expect(pic.acknowledge() == 0x21)
  }

  @Test func priorityAndNesting() {
    initialise()
    pic.setIRQ(4, level: true)
    pic.setIRQ(1, level: true)
    #expect(pic.acknowledge() == 0x21)  // IRQ1 outranks IRQ4
    #expect(!pic.hasPendingInterrupt)  // IRQ4 waits for IRQ1's EOI
    pic.setIRQ(0, level: true)
    #expect(pic.acknowledge() == 0x20)  // IRQ0 nests over IRQ1
    out(0x20, 0x20)  // EOI IRQ0
    out(0x20, 0x20)  // EOI IRQ1
    #expect(pic.acknowledge() == 0x24)
  }

  @Test func specificEOIClearsOnlyThatLine() {
    initialise()
    pic.setIRQ(3, level: true)
    _ = pic.acknowledge()
    pic.setIRQ(0, level: true)
    _ = pic.acknowledge()
    out(0x20, 0x63)  // specific EOI for IRQ3
    #expect(pic.inServiceRegister == 0x0001)
  }

  @Test func slaveCascadesThroughIRQ2() {
    initialise()
    pic.setIRQ(12, level: true)
    pic.setIRQ(12, level: false)
    #expect(pic.hasPendingInterrupt)
    #expect(pic.acknowledge() == 0x2C)
    #expect(pic.inServiceRegister == 0x1004)
    out(0xA0, 0x20)
    out(0x20, 0x20)
    #expect(pic.inServiceRegister == 0)
  }

  @Test func slaveMaskAndMasterCascadeMask() {
    initialise()
    out(0x21, 0x04)  // mask the cascade
    pic.setIRQ(8, level: true)
    #expect(!pic.hasPendingInterrupt)
    out(0x21, 0x00)
    #expect(pic.acknowledge() == 0x28)
  }

  @Test func spuriousIRQ15WhenTheSlaveRequestVanishes() {
    initialise()
    out(0xA0 + 0x00, 0x11)  // re-init slave with ... keep defaults
    out(0xA1, 0x28)
    out(0xA1, 0x02)
    out(0xA1, 0x01)
    out(0x4D1, 0x02)  // IRQ9 level triggered
    pic.setIRQ(9, level: true)
    #expect(pic.hasPendingInterrupt)
    pic.setIRQ(9, level: false)  // withdrawn; the master's edge latch on IR2 remains
    #expect(pic.acknowledge() == 0x2F)
    #expect(pic.spuriousCount == 1)
    #expect(pic.inServiceRegister & 0xFF00 == 0)  // nothing in service on the slave
  }

  @Test func levelTriggeredLineRequestsWhileHigh() {
    initialise()
    out(0x4D0, 0x20)  // IRQ5 level
    #expect(inb(0x4D0) == 0x20)
    pic.setIRQ(5, level: true)
    #expect(pic.acknowledge() == 0x25)
    out(0x20, 0x20)
    #expect(pic.hasPendingInterrupt)  // still high: requests again
    pic.setIRQ(5, level: false)
    #expect(!pic.hasPendingInterrupt)
  }

  @Test func elcrCannotMakeTimerOrCascadeLevel() {
    out(0x4D0, 0xFF)
    out(0x4D1, 0xFF)
    #expect(inb(0x4D0) == 0xF8)
    #expect(inb(0x4D1) == 0xDE)
  }

  @Test func edgeNeedsANewRisingEdge() {
    initialise()
    pic.setIRQ(3, level: true)
    #expect(pic.acknowledge() == 0x23)
    out(0x20, 0x20)
    pic.setIRQ(3, level: true)  // still high, no new edge
    #expect(!pic.hasPendingInterrupt)
    pic.setIRQ(3, level: false)
    pic.setIRQ(3, level: true)
    #expect(pic.hasPendingInterrupt)
  }

  @Test func autoEOILeavesNothingInService() {
    initialise(autoEOI: true)
    pic.setIRQ(1, level: true)
    #expect(pic.acknowledge() == 0x21)
    #expect(pic.inServiceRegister == 0)
  }

  @Test func ocw3ReadsIRRAndISR() {
    initialise()
    out(0x21, 0xFF)
    pic.setIRQ(6, level: true)
    out(0x20, 0x0A)  // read IRR
    #expect(inb(0x20) == 0x40)
    out(0x21, 0x00)
    _ = pic.acknowledge()
    out(0x20, 0x0B)  // read ISR
    #expect(inb(0x20) == 0x40)
  }

  @Test func pollCommandAcknowledges() {
    initialise()
    out(0x20, 0x0C)
    #expect(inb(0x20) == 0x00)  // nothing pending
    pic.setIRQ(7, level: true)
    out(0x20, 0x0C)
    #expect(inb(0x20) == 0x87)
    #expect(pic.inServiceRegister == 0x0080)
    #expect(!pic.hasPendingInterrupt)
  }

  @Test func rotationChangesPriority() {
    initialise()
    out(0x20, 0xC3)  // set priority: IRQ3 lowest, IRQ4 highest
    pic.setIRQ(1, level: true)
    pic.setIRQ(5, level: true)
    #expect(pic.acknowledge() == 0x25)
    out(0x20, 0xA0)  // rotate on non-specific EOI: IRQ5 becomes lowest
    #expect(pic.acknowledge() == 0x21)
  }

  @Test func specialMaskModeLetsLowerPrioritiesThrough() {
    initialise()
    pic.setIRQ(1, level: true)
    _ = pic.acknowledge()
    pic.setIRQ(4, level: true)
    #expect(!pic.hasPendingInterrupt)
    out(0x21, 0x02)  // mask the in-service IRQ1
    out(0x20, 0x68)  // special mask mode on
    #expect(pic.acknowledge() == 0x24)
  }

  @Test func ignoresBogusLines() {
    initialise()
    pic.setIRQ(-1, level: true)
    pic.setIRQ(16, level: true)
    pic.setIRQ(2, level: true)
    #expect(!pic.hasPendingInterrupt)
  }
}
