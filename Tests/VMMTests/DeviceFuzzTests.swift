import Testing

@testable import VMM

/// Random port I/O against every device: whatever a guest writes, the devices must not trap, and
/// their interrupt output must stay consistent with the PIC's view.
@Suite struct DeviceFuzzTests {
  @Test func randomPortTrafficNeverCrashes() throws {
    let memory = try GuestMemory(ramSize: 8 << 20)
    let clock = ManualClock()
    let pc = PCDevices(
      memory: memory, clock: clock, control: MachineControl(), serialOutput: { _ in })
    let bus = PortIOBus()
    try pc.register(on: bus)
    let ports: [UInt16] =
      [0x20, 0x21, 0xA0, 0xA1, 0x4D0, 0x4D1, 0x40, 0x41, 0x42, 0x43, 0x60, 0x61, 0x64, 0x70, 0x71, 0x80, 0x92]
      + Array(0x3F8...0x3FF) + [0x510, 0x511, 0x604, 0x605, 0xCF8, 0xCF9, 0xCFC, 0xCFD, 0xCFE, 0xCFF]
    var rng = SplitMix64(seed: 2026)
    for i in 0..<50_000 {
      let port = ports.randomElement(using: &rng)!
      let size = [1, 1, 1, 2, 4].randomElement(using: &rng)!
      if Bool.random(using: &rng) {
        bus.write(port: port, size: size, value: UInt32(truncatingIfNeeded: rng.next()))
      } else {
        _ = bus.read(port: port, size: size)
      }
      if i % 16 == 0 {
        clock.advance(by: UInt64.random(in: 0...5_000_000, using: &rng))
        for d in pc.timedDevices { d.advance(to: clock.nanoseconds) }
      }
      if i % 8 == 0 { pc.pic.setIRQ(Int.random(in: 0...15, using: &rng), level: Bool.random(using: &rng)) }
      if i % 5 == 0 { pc.serial.receive([UInt8.random(in: 0...255, using: &rng)]) }
      if pc.pic.hasPendingInterrupt {
        let vector = try #require(pc.pic.acknowledge())
        _ = vector
      }
    }
    // Long pauses and huge times do not overflow.
    clock.nanoseconds = .max - 1
    for d in pc.timedDevices {
      d.advance(to: clock.nanoseconds)
      _ = d.nextDeadline
    }
    _ = bus.read(port: 0x40, size: 1)
    _ = bus.read(port: 0x61, size: 1)
    _ = pc.cmos[0]
  }
}
