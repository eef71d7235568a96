import Testing

@testable import VMM

/// The local APIC's MSR interface on its own: IA32_APIC_BASE's mode transitions, the x2APIC
/// registers and the accesses that raise #GP, the ESR's causes and error interrupt, TSC-deadline
/// mode, LINT1 and the NMI latch.
@Suite struct X2APICRegisterTests {
  func x2APIC(_ id: UInt8 = 0, clock: ManualClock = ManualClock()) -> LocalAPIC {
    let apic = LocalAPIC(id: id, clock: clock)
    #expect(apic.writeMSR(0x1B, value: 0xFEE0_0C00))
    #expect(apic.writeMSR(0x80F, value: 0x1FF))
    return apic
  }

  @Test func apicBaseModeTransitions() {
    let bsp = LocalAPIC(id: 0, clock: ManualClock())
    #expect(bsp.readMSR(0x1B) == 0xFEE0_0900)
    #expect(LocalAPIC(id: 1, clock: ManualClock()).readMSR(0x1B) == 0xFEE0_0800)
    #expect(bsp.mode == .xAPIC)
    #expect(!bsp.writeMSR(0x1B, value: 0xFEE0_0400))  // EXTD without EN: invalid
    #expect(!bsp.writeMSR(0x1B, value: 0xFEE0_0801))  // reserved bit 0
    #expect(!bsp.writeMSR(0x1B, value: 0x100_FEE0_0800))  // above the physical-address width
    #expect(bsp.writeMSR(0x1B, value: 0xFEE0_0C00))  // xAPIC -> x2APIC
    #expect(bsp.mode == .x2APIC)
    #expect(bsp.readMSR(0x1B) == 0xFEE0_0D00)  // BSP flag kept
    #expect(!bsp.writeMSR(0x1B, value: 0xFEE0_0800))  // x2APIC -> xAPIC: #GP
    #expect(bsp.mode == .x2APIC)
    #expect(bsp.writeMSR(0x1B, value: 0xFEE0_0000))  // x2APIC -> disabled
    #expect(bsp.mode == .disabled)
    #expect(!bsp.writeMSR(0x1B, value: 0xFEE0_0C00))  // disabled -> x2APIC: #GP
    #expect(bsp.writeMSR(0x1B, value: 0xFEE0_0800))  // disabled -> xAPIC
    #expect(bsp.writeMSR(0x1B, value: 0xFEE0_0C00))
    bsp.receiveINIT()
    #expect(bsp.mode == .x2APIC)  // INIT keeps the mode
    bsp.reset()
    #expect(bsp.mode == .xAPIC)  // RESET does not
  }

  @Test func disablingTheAPICLosesItsStateAndAcceptsNothing() {
    let apic = x2APIC()
    apic.accept(vector: 0x40)
    #expect(apic.writeMSR(0x1B, value: 0xFEE0_0000))
    #expect(!apic.hasDeliverableInterrupt)
    apic.accept(vector: 0x41)
    apic.acceptNMI()
    #expect(!apic.hasDeliverableInterrupt && !apic.hasPendingNMI)
    #expect(!apic.respondsToMMIO)
    #expect(apic.passesExternalInterrupts)
    #expect(apic.writeMSR(0x1B, value: 0xFEE0_0800))
    #expect(apic.respondsToMMIO)
    #expect(apic.read(offset: 0xF0, size: 4) == 0xFF)  // back at the reset SVR
  }

  @Test func x2APICRegistersReadThroughMSRs() {
    let apic = x2APIC(37)
    #expect(apic.readMSR(0x802) == 37)
    #expect(apic.readMSR(0x803) == 0x5_0014)
    #expect(apic.readMSR(0x80D) == (2 << 16 | 1 << 5))  // cluster 2, bit 37 & 15
    #expect(apic.readMSR(0x80F) == 0x1FF)
    #expect(!apic.respondsToMMIO)
    #expect(apic.writeMSR(0x808, value: 0x20))
    #expect(apic.readMSR(0x808) == 0x20)
    apic.accept(vector: 0x52, level: true)
    #expect(apic.readMSR(0x822) == 1 << (0x52 - 0x40))  // IRR 0x40-0x5F
    #expect(apic.readMSR(0x81A) == 1 << (0x52 - 0x40))  // TMR
    #expect(apic.acknowledge() == 0x52)
    #expect(apic.readMSR(0x812) == 1 << (0x52 - 0x40))  // ISR
    #expect(apic.readMSR(0x80A) == 0x50)  // PPR
    var retired: [UInt8] = []
    apic.levelEOI = { retired.append($0) }
    #expect(apic.writeMSR(0x80B, value: 0))
    #expect(retired == [0x52])
  }

  @Test func illegalAccessesRaiseGeneralProtection() {
    let xapic = LocalAPIC(id: 0, clock: ManualClock())
    #expect(xapic.readMSR(0x802) == nil)  // x2APIC MSRs outside x2APIC mode
    #expect(!xapic.writeMSR(0x808, value: 0))
    let apic = x2APIC()
    #expect(apic.readMSR(0x80B) == nil)  // EOI is write-only
    #expect(apic.readMSR(0x83F) == nil)  // SELF IPI is write-only
    #expect(apic.readMSR(0x80E) == nil)  // no DFR
    #expect(apic.readMSR(0x831) == nil)  // no ICR high half
    #expect(apic.readMSR(0x82F) == nil)  // no LVT CMCI
    #expect(apic.readMSR(0x8FF) == nil)
    #expect(!apic.writeMSR(0x802, value: 5))  // ID is read-only
    #expect(!apic.writeMSR(0x80D, value: 1))  // LDR is read-only
    #expect(!apic.writeMSR(0x839, value: 1))  // current count is read-only
    #expect(!apic.writeMSR(0x80B, value: 1))  // EOI must be 0
    #expect(!apic.writeMSR(0x828, value: 1))  // ESR must be 0
    #expect(!apic.writeMSR(0x808, value: 1 << 32))  // upper half reserved
    #expect(!apic.writeMSR(0x83F, value: 0x140))  // SELF IPI bits 31-8
    #expect(!apic.writeMSR(0x0800, value: 0))
  }

  @Test func theICRIsOneMSRWithA32BitDestination() {
    let apic = x2APIC(3)
    var sent: [InterProcessorInterrupt] = []
    apic.send = { sent.append($0) }
    #expect(apic.writeMSR(0x830, value: 0x0000_0102_0000_4830))
    #expect(sent.count == 1)
    #expect(sent[0].x2APICFormat && sent[0].destination == 0x102 && sent[0].logical && sent[0].vector == 0x30)
    #expect(apic.readMSR(0x830) == 0x0000_0102_0000_4830)
    #expect(apic.writeMSR(0x83F, value: 0x45))  // SELF IPI: straight to this APIC
    #expect(sent.count == 1)
    #expect(apic.acknowledge() == 0x45)
  }

  @Test func x2APICClusterAddressing() {
    let apic = x2APIC(18)  // cluster 1, bit 2
    func logical(_ d: UInt32) -> InterProcessorInterrupt {
      InterProcessorInterrupt(source: 0, icrLow: 0x800, icrHigh: d, x2APICFormat: true)
    }
    #expect(apic.isAddressed(by: logical(0x0001_0004)))
    #expect(apic.isAddressed(by: logical(0x0001_FFFF)))
    #expect(!apic.isAddressed(by: logical(0x0000_0004)))  // other cluster
    #expect(!apic.isAddressed(by: logical(0x0001_0002)))  // other bit
    #expect(apic.isAddressed(by: logical(0xFFFF_FFFF)))
    #expect(apic.isAddressed(by: InterProcessorInterrupt(source: 0, icrLow: 0, icrHigh: 18, x2APICFormat: true)))
    #expect(!apic.isAddressed(by: InterProcessorInterrupt(source: 0, icrLow: 0, icrHigh: 0x12, x2APICFormat: false)))
  }

  @Test func errorStatusIsWrittenBeforeItIsReadAndRaisesTheErrorInterrupt() {
    let apic = LocalAPIC(id: 0, clock: ManualClock())
    apic.write(offset: 0xF0, size: 4, value: 0x1FF)
    apic.write(offset: 0x370, size: 4, value: 0x42)  // LVT error: vector 0x42
    var sent: [InterProcessorInterrupt] = []
    apic.send = { sent.append($0) }
    apic.write(offset: 0x300, size: 4, value: 0x4005)  // fixed IPI with vector 5: not sent
    #expect(sent.isEmpty)
    #expect(apic.read(offset: 0x280, size: 4) == 0)  // not yet loaded
    apic.write(offset: 0x280, size: 4, value: 0)
    #expect(apic.read(offset: 0x280, size: 4) == 0x20)  // send illegal vector
    #expect(apic.acknowledge() == 0x42)  // the error interrupt
    apic.write(offset: 0xB0, size: 4, value: 0)
    apic.accept(vector: 3)
    apic.noteUndeliveredIPI()
    _ = apic.read(offset: 0x10, size: 4)  // reserved register
    apic.write(offset: 0x280, size: 4, value: 0)
    #expect(apic.read(offset: 0x280, size: 4) == 0x40 | 0x04 | 0x80)
    apic.write(offset: 0x280, size: 4, value: 0)  // back-to-back writes clear it
    #expect(apic.read(offset: 0x280, size: 4) == 0)
    apic.write(offset: 0x370, size: 4, value: 0x1_0042)  // masked: errors still collected
    _ = apic.acknowledge()
    apic.write(offset: 0xB0, size: 4, value: 0)
    apic.accept(vector: 1)
    #expect(!apic.hasDeliverableInterrupt)
    apic.write(offset: 0x280, size: 4, value: 0)
    #expect(apic.read(offset: 0x280, size: 4) == 0x40)
  }

  @Test func tscDeadlineModeArmsFiresAndDisarms() {
    let clock = ManualClock()
    let apic = x2APIC(clock: clock)
    apic.armTSCDeadline(500, due: 500)
    #expect(apic.armedTSCDeadline == 0 && apic.nextDeadline == nil)  // one-shot mode: ignored
    #expect(apic.writeMSR(0x832, value: 0x4_0040))  // TSC-deadline mode, vector 0x40
    #expect(apic.writeMSR(0x838, value: 100))  // the initial count is ignored in this mode
    #expect(apic.readMSR(0x838) == 0 && apic.nextDeadline == nil)
    apic.armTSCDeadline(1500, due: 1000)
    #expect(apic.armedTSCDeadline == 1500 && apic.nextDeadline == 1000)
    apic.advance(to: 999)
    #expect(!apic.hasDeliverableInterrupt && apic.armedTSCDeadline == 1500)
    apic.advance(to: 1000)
    #expect(apic.acknowledge() == 0x40)
    #expect(apic.armedTSCDeadline == 0 && apic.nextDeadline == nil)  // fired: reads 0
    apic.armTSCDeadline(9000, due: 9000)
    apic.armTSCDeadline(0, due: 0)  // 0 disarms
    #expect(apic.nextDeadline == nil)
    apic.armTSCDeadline(9000, due: 9000)
    #expect(apic.writeMSR(0x832, value: 0x40))  // to one-shot: disarms
    #expect(apic.writeMSR(0x832, value: 0x4_0040))
    #expect(apic.armedTSCDeadline == 0 && apic.nextDeadline == nil)
    #expect(apic.writeMSR(0x832, value: 0x40))  // one-shot
    #expect(apic.writeMSR(0x838, value: 100))
    #expect(apic.writeMSR(0x832, value: 0x2_0040))  // to periodic: disarmed as well
    #expect(apic.nextDeadline == nil && apic.readMSR(0x838) == 0)
  }

  @Test func lint1DeliversAsItsLVTEntrySays() {
    let apic = LocalAPIC(id: 1, clock: ManualClock())
    apic.signalLINT1()  // software-disabled AP: the wire reaches the BSP only
    #expect(!apic.hasPendingNMI)
    let bsp = LocalAPIC(id: 0, clock: ManualClock())
    bsp.signalLINT1()
    #expect(bsp.takeNMI() && !bsp.hasPendingNMI)
    apic.write(offset: 0xF0, size: 4, value: 0x1FF)
    apic.signalLINT1()  // masked
    #expect(!apic.hasPendingNMI)
    apic.write(offset: 0x360, size: 4, value: 0x400)  // NMI
    apic.signalLINT1()
    apic.signalLINT1()
    #expect(apic.takeNMI())
    #expect(!apic.takeNMI())  // one latched
    apic.write(offset: 0x360, size: 4, value: 0x47)  // fixed, vector 0x47
    apic.signalLINT1()
    #expect(apic.acknowledge() == 0x47)
  }
}
