import Testing

@testable import VMM

/// The PCI INTx wiring: the swizzle, the shared (wired-OR) links, and where each link arrives.
struct PCIInterruptRouterTests {
  @Test func pinsSwizzleOntoTheFourLinks() {
    #expect(PCIInterruptRouter.link(slot: 0, pin: 0) == 0)
    #expect(PCIInterruptRouter.link(slot: 2, pin: 0) == 2)
    #expect(PCIInterruptRouter.link(slot: 2, pin: 3) == 1)
    #expect(PCIInterruptRouter.link(slot: 31, pin: 1) == 0)
    #expect((0..<4).map { PCIInterruptRouter.picIRQ(link: $0) } == [10, 11, 10, 11])
  }

  @Test func aLinkReachesIOAPICPin16PlusLinkAndItsPICIRQ() {
    let pic = RecordingSink()
    let ioapic = RecordingSink()
    let router = PCIInterruptRouter(pic: pic, ioapic: ioapic)
    router.line(slot: 3).raise()  // link D
    #expect(ioapic.changes.map(\.line) == [19] && ioapic.changes.map(\.level) == [true])
    #expect(pic.changes.map(\.line) == [11] && pic.changes.map(\.level) == [true])
    router.line(slot: 3).lower()
    #expect(ioapic.changes.last?.level == false && pic.changes.last?.level == false)
  }

  @Test func aSharedLinkStaysAssertedUntilEveryFunctionLowersIt() {
    let ioapic = RecordingSink()
    let router = PCIInterruptRouter(pic: nil, ioapic: ioapic)
    // Slot 2 INTA and slot 6 INTA share link C (GSI 18).
    router.line(slot: 2).raise()
    router.line(slot: 6).raise()
    router.line(slot: 2).lower()
    #expect(ioapic.changes.count == 1 && ioapic.changes[0].line == 18 && ioapic.changes[0].level)
    router.line(slot: 2).lower()  // lowering twice changes nothing
    router.line(slot: 6).lower()
    #expect(ioapic.changes.count == 2 && ioapic.changes[1].line == 18 && !ioapic.changes[1].level)
  }

  @Test func sourcesOutsideTheBusAreIgnored() {
    let ioapic = RecordingSink()
    let router = PCIInterruptRouter(pic: nil, ioapic: ioapic)
    router.setIRQ(128, level: true)
    router.setIRQ(-1, level: true)
    #expect(ioapic.changes.isEmpty)
  }
}
