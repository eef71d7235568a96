import Testing

@testable import VMM

@Suite struct PCDevicesTests {
  @Test func registersEverythingAndRoutesInterruptsToThePIC() throws {
    let memory = try GuestMemory(ramSize: 16 << 20)
    let clock = ManualClock()
    let out = OutputCollector()
    let control = MachineControl()
    let pc = PCDevices(
      memory: memory, clock: clock, control: control, serialOutput: { out.append($0) })
    let bus = PortIOBus()
    try pc.register(on: bus)
    // COM1 output and the debug console share the output.
    bus.write(port: 0x3F8, size: 1, value: 0x41)
    bus.write(port: 0xE9, size: 1, value: 0x42)
    #expect(out.text == "AB")
    // Program the PIC and PIT the way Linux does; IRQ0 arrives as vector 0x20.
    for (p, v) in [(0x20, 0x11), (0x21, 0x20), (0x21, 0x04), (0x21, 0x01), (0x21, 0x00)] {
      bus.write(port: UInt16(p), size: 1, value: UInt32(v))
    }
    for (p, v) in [(0x43, 0x34), (0x40, 0xA9), (0x40, 0x04)] { bus.write(port: UInt16(p), size: 1, value: UInt32(v)) }
    let deadline = try #require(pc.timedDevices.compactMap(\.nextDeadline).min())
    clock.nanoseconds = deadline
    for d in pc.timedDevices { d.advance(to: clock.nanoseconds) }
    #expect(pc.pic.hasPendingInterrupt)
    #expect(pc.pic.acknowledge() == 0x20)
    // fw_cfg answers, the unclaimed port count stays zero.
    bus.write(port: 0x510, size: 2, value: 0)
    #expect(bus.read(port: 0x511, size: 1) == 0x51)
    #expect(bus.unclaimedAccesses == 0)
    #expect(control.requestedStop == nil && control.resetHistory.isEmpty)
  }

  @Test func stopRequests() throws {
    let memory = try GuestMemory(ramSize: 16 << 20)
    let control = MachineControl()
    let a = PCDevices(memory: memory, clock: ManualClock(), control: control, serialOutput: { _ in })
    let bus = PortIOBus()
    try a.register(on: bus)
    bus.write(port: 0x64, size: 1, value: 0xFE)
    #expect(control.take().reset == .keyboardController)
    bus.write(port: 0x604, size: 2, value: 0x2000)
    #expect(control.take().stop == .powerOff)
    bus.write(port: 0xF4, size: 1, value: 1)
    #expect(control.take().stop == .powerOff)  // the first stop wins
  }

  @Test func anExternalSinkLeavesThePICOffTheBus() throws {
    let memory = try GuestMemory(ramSize: 16 << 20)
    let sink = RecordingSink()
    let pc = PCDevices(
      memory: memory, clock: ManualClock(), control: MachineControl(), interruptSink: sink, serialOutput: { _ in })
    let bus = PortIOBus()
    try pc.register(on: bus)
    #expect(bus.device(for: 0x20) == nil)
    bus.write(port: 0x3F9, size: 1, value: 0x02)  // COM1 THRE interrupt
    #expect(sink.levels[4])
  }
}
