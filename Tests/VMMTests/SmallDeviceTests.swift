import Testing

@testable import VMM

@Suite struct SmallDeviceTests {
  @Test func debugExitEncodesTheStatusLikeQEMU() {
    let control = MachineControl()
    let d = DebugExitDevice(control: control)
    #expect(control.requestedStop == nil && !control.hasChanged(since: 0))
    d.write(port: 0xF4, size: 1, value: 0x10)
    #expect(control.hasChanged(since: 0))
    #expect(control.requestedStop == .debugExit(value: 0x10))
    #expect(control.requestedStop?.exitStatus == 0x21)
    d.write(port: 0xF4, size: 1, value: 0)
    #expect(control.requestedStop == .debugExit(value: 0x10))  // first request wins
    let zeroControl = MachineControl()
    DebugExitDevice(control: zeroControl).write(port: 0xF4, size: 4, value: 0)
    #expect(zeroControl.requestedStop?.exitStatus == 1)
  }

  @Test func debugConsoleOutputsBytesAndAnswersE9() {
    let out = OutputCollector()
    let d = DebugConsole(output: { out.append($0) })
    for b in "ok".utf8 { d.write(port: 0xE9, size: 1, value: UInt32(b)) }
    d.write(port: 0x402, size: 1, value: 0x21)
    #expect(out.text == "ok!")
    #expect(d.read(port: 0xE9, size: 1) == 0xE9)
    #expect(d.read(port: 0x402, size: 1) == 0xE9)
  }

  @Test func powerOffOnSleepEnable() {
    let control = MachineControl()
    let d = PowerOffDevice(control: control)
    d.write(port: 0x604, size: 1, value: 0x00)  // byte writes do nothing
    d.write(port: 0x604, size: 2, value: 0x0001)  // SCI_EN only
    #expect(control.requestedStop == nil)
    #expect(d.read(port: 0x604, size: 2) == 0x0001)
    d.write(port: 0x604, size: 2, value: 0x2000)
    #expect(control.requestedStop == .powerOff)
    #expect(d.read(port: 0x604, size: 2) & 0x2000 == 0)
  }

  @Test func hostInputQueueAcrossThreads() async {
    let q = HostInputQueue()
    #expect(q.push([1, 2]))
    #expect(!q.push([3]))
    #expect(q.drain() == [1, 2, 3])
    #expect(q.isEmpty)
    // Four producers and a consumer racing: every byte arrives exactly once.
    let drained = await withTaskGroup(of: Int.self) { group in
      for t in 0..<4 {
        group.addTask {
          for i in 0..<1000 { q.push([UInt8(truncatingIfNeeded: t * 1000 + i)]) }
          return 0
        }
      }
      group.addTask {
        var n = 0
        for _ in 0..<200 { n += q.drain().count }
        return n
      }
      return await group.reduce(0, +)
    }
    #expect(drained + q.drain().count == 4000)
    let limited = HostInputQueue(limit: 3)
    limited.push([1, 2, 3, 4, 5])
    #expect(limited.drain() == [1, 2, 3])
    #expect(limited.droppedBytes == 2)
  }

  @Test func hostInputFeedsTheUART() {
    let q = HostInputQueue()
    let uart = Serial16550(irq: nil, output: { _ in })
    q.push(Array("xyz".utf8))
    uart.receive(q.drain())
    var got: [UInt8] = []
    while uart.read(port: 0x3FD, size: 1) & 1 != 0 { got.append(UInt8(uart.read(port: 0x3F8, size: 1))) }
    #expect(got == Array("xyz".utf8))
  }

  @Test func devicesWorkOnTheBus() throws {
    let bus = PortIOBus()
    let control = MachineControl()
    let exit = DebugExitDevice(control: control)
    let pic = PICPair()
    try bus.register(exit, ports: 0xF4...0xF4)
    try bus.register(pic, ports: 0x20...0x21)
    try bus.register(pic, ports: 0xA0...0xA1)
    try bus.register(pic, ports: 0x4D0...0x4D1)
    bus.write(port: 0xF4, size: 1, value: 3)
    #expect(control.requestedStop?.exitStatus == 7)
    #expect(bus.read(port: 0x21, size: 1) == 0xFF)
  }

  /// Lightweight accesses: unclaimed ports and the diagnostic port are answered; a device that
  /// did not say so (isa-debug-exit, the PIC) is left alone for the run loop.
  @Test func onlyLightweightDevicesAreAccessedAsLightweightExits() throws {
    let bus = PortIOBus()
    let control = MachineControl()
    let diagnostic = DiagnosticPort()
    let pic = PICPair()
    try bus.register(DebugExitDevice(control: control), ports: 0xF4...0xF4)
    try bus.register(diagnostic, ports: 0x80...0x80)
    try bus.register(pic, ports: 0x20...0x21)
    #expect(bus.lightweightAccess(PortAccess(port: 0x80, size: 1, isWrite: true, value: 0x1AB)) == 0)
    #expect(diagnostic.lastCode == 0xAB && diagnostic.writeCount == 1)
    #expect(bus.lightweightAccess(PortAccess(port: 0x80, size: 2, isWrite: false)) == 0xAB)
    #expect(bus.lightweightAccess(PortAccess(port: 0x5555, size: 2, isWrite: false)) == 0xFFFF)
    #expect(bus.lightweightAccess(PortAccess(port: 0x5555, size: 4, isWrite: true, value: 1)) == 0)
    #expect(bus.unclaimedAccesses == 2)
    #expect(bus.lightweightAccess(PortAccess(port: 0xF4, size: 1, isWrite: true, value: 3)) == nil)
    #expect(control.requestedStop == nil)
    #expect(bus.lightweightAccess(PortAccess(port: 0x21, size: 1, isWrite: true, value: 0)) == nil)
    #expect(bus.read(port: 0x21, size: 1) == 0xFF)  // the mask write never happened
  }
}
