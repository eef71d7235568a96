import Testing

@testable import VMM

/// The I/O APIC's registers, edge and level pins, remote IRR and EOI, and its wiring into the
/// machine (a device interrupt reaching a vCPU through its local APIC).
@Suite struct IOAPICTests {
  final class Sent {
    var messages: [InterProcessorInterrupt] = []
  }

  func ioapic() -> (IOAPIC, Sent) {
    let io = IOAPIC()
    let sent = Sent()
    io.send = { sent.messages.append($0) }
    return (io, sent)
  }

  func program(_ io: IOAPIC, pin: Int, low: UInt32, high: UInt32 = 0) {
    io.write(offset: 0, size: 4, value: UInt64(0x11 + 2 * pin))
    io.write(offset: 0x10, size: 4, value: UInt64(high))
    io.write(offset: 0, size: 4, value: UInt64(0x10 + 2 * pin))
    io.write(offset: 0x10, size: 4, value: UInt64(low))
  }

  func entry(_ io: IOAPIC, pin: Int) -> UInt64 {
    io.write(offset: 0, size: 4, value: UInt64(0x10 + 2 * pin))
    return io.read(offset: 0x10, size: 4)
  }

  @Test func versionAndMaskedEntriesAtReset() {
    let (io, sent) = ioapic()
    io.write(offset: 0, size: 4, value: 1)
    #expect(io.read(offset: 0x10, size: 4) == 0x17_0011)
    #expect(entry(io, pin: 5) == 0x1_0000)
    io.setIRQ(5, level: true)
    #expect(sent.messages.isEmpty)
  }

  @Test func edgePinsSendOnRisingEdges() {
    let (io, sent) = ioapic()
    program(io, pin: 4, low: 0x34, high: 0x0200_0000)
    io.setIRQ(4, level: true)
    io.setIRQ(4, level: true)  // no new edge
    io.setIRQ(4, level: false)
    io.setIRQ(4, level: true)
    #expect(sent.messages.count == 2)
    #expect(sent.messages[0].vector == 0x34 && sent.messages[0].destination == 2 && sent.messages[0].deliveryMode == 0)
  }

  @Test func levelPinsHoldRemoteIRRUntilEOI() {
    let (io, sent) = ioapic()
    program(io, pin: 9, low: 0x8000 | 0x49)  // level, vector 0x49
    io.setIRQ(9, level: true)
    #expect(sent.messages.count == 1)
    #expect(entry(io, pin: 9) & 0x4000 != 0)  // remote IRR
    io.setIRQ(9, level: true)
    #expect(sent.messages.count == 1)
    io.endOfInterrupt(vector: 0x49)  // still asserted: sent again
    #expect(sent.messages.count == 2)
    io.setIRQ(9, level: false)
    io.endOfInterrupt(vector: 0x49)
    #expect(sent.messages.count == 2)
    #expect(entry(io, pin: 9) & 0x4000 == 0)
  }

  @Test func activeLowPolarityInvertsTheLine() {
    let (io, sent) = ioapic()
    io.setIRQ(10, level: true)  // the line idles high
    program(io, pin: 10, low: 0x8000 | 0x2000 | 0x50)  // level, active low
    #expect(sent.messages.isEmpty)
    io.setIRQ(10, level: false)  // pulled low: asserted
    #expect(sent.messages.count == 1)
    io.setIRQ(10, level: true)
    io.endOfInterrupt(vector: 0x50)
    #expect(sent.messages.count == 1)
  }

  @Test func isaIRQ0ReachesPin2() {
    let (io, sent) = ioapic()
    program(io, pin: 2, low: 0x30)
    let wiring = LegacyInterruptWiring(pic: PICPair(), ioapic: io)
    wiring.setIRQ(0, level: true)
    #expect(sent.messages.map(\.vector) == [0x30])
  }

  /// COM1's transmitter-empty interrupt (IRQ 4), routed by the I/O APIC to vCPU 0's local APIC,
  /// is injected into the vCPU; the 8259 stays masked.
  @Test func aDeviceInterruptReachesTheVCPUThroughTheIOAPIC() throws {
    typealias Step = ScriptedVirtualCPU.Step
    func mmio(_ address: UInt64, _ value: UInt64) -> Step {
      .exit(.mmio(MMIOAccess(address: address, size: 4, isWrite: true, value: value)))
    }
    var steps: [Step] = [
      mmio(LocalAPIC.base + 0xF0, 0x1FF),  // software-enable the local APIC
      mmio(IOAPIC.base, 0x19), mmio(IOAPIC.base + 0x10, 0),  // pin 4: destination APIC 0
      mmio(IOAPIC.base, 0x18), mmio(IOAPIC.base + 0x10, 0x44),  // pin 4: vector 0x44, edge
      Step { cpu in
        cpu.currentRegisters.rflags |= 0x200
        return .io(PortAccess(port: 0x3F9, size: 1, isWrite: true, value: 0x02))  // COM1 IER: THRE
      },
    ]
    func waitForVector() -> Step {
      Step { cpu in
        if cpu.deliveredVectors.contains(0x44) { return .io(PortAccess(port: 0xF4, size: 1, isWrite: true, value: 0)) }
        cpu.script.insert(waitForVector(), at: 0)
        return .budgetExhausted
      }
    }
    steps.append(waitForVector())
    let engine = ScriptedEngine(script: steps)
    let machine = try Machine(
      memory: try GuestMemory(ramSize: 1 << 20),
      boot: BootState(mode: .real, registers: Registers(), specialRegisters: SpecialRegisters()),
      engine: engine, configuration: MachineConfiguration(timeoutSeconds: 60))
    #expect(machine.run().reason == .debugExit(value: 0))
    #expect(engine.vcpu.deliveredVectors == [0x44])
  }
}
