import Foundation
import Testing

@testable import VMM

/// virtio-console through the PCI transport, driven by `VirtioDriverDouble`: transmit to the
/// console output, host input into receive buffers (waiting for them when there are none), the
/// emergency-write register, and a broken transmit chain.
@Suite struct VirtioConsoleTests {
  final class Output {
    var bytes: [UInt8] = []
    var text: String { String(decoding: bytes, as: UTF8.self) }
  }

  func make() throws -> (VirtioDriverDouble, VirtioConsole, Output) {
    let output = Output()
    let console = VirtioConsole(output: { output.bytes += $0 })
    let d = try VirtioDriverDouble(backend: console)
    #expect(d.config(0x00) == 0x1043_1AF4)
    #expect(d.initialize(queues: 2) & 8 != 0)
    return (d, console, output)
  }

  @Test func transmittedBuffersReachTheConsole() throws {
    let (d, _, output) = try make()
    let table = d.descriptors + 0x1_0000  // queue 1's descriptor table
    try d.memory.write(0x30_0000, bytes: Array("hello, ".utf8))
    try d.memory.write(0x30_1000, bytes: Array("hvc0\n".utf8))
    try d.descriptor(0, address: 0x30_0000, length: 7, flags: 1, next: 1, table: table)
    try d.descriptor(1, address: 0x30_1000, length: 5, flags: 0, table: table)
    try d.submit(0, queue: 1)
    #expect(output.text == "hello, hvc0\n")
    #expect(try d.lastUsed(queue: 1).index == 1)
    #expect(d.delivered.last?.vector == 0x41)
  }

  @Test func hostInputWaitsForReceiveBuffersThenFillsThem() throws {
    let (d, console, _) = try make()
    console.receive(Array("ls -l\n".utf8))
    #expect(try d.lastUsed(queue: 0).index == 0, "no buffer posted yet")
    try d.descriptor(0, address: 0x40_0000, length: 4, flags: 2)
    try d.submit(0, queue: 0)
    #expect(try d.lastUsed(queue: 0).length == 4)
    #expect(String(decoding: try d.memory.read(0x40_0000, count: 4), as: UTF8.self) == "ls -")
    // The rest goes into the next buffer as soon as it is posted; new input as soon as it comes.
    try d.descriptor(1, address: 0x41_0000, length: 64, flags: 2)
    try d.submit(1, queue: 0)
    #expect(String(decoding: try d.memory.read(0x41_0000, count: 2), as: UTF8.self) == "l\n")
    try d.descriptor(2, address: 0x42_0000, length: 64, flags: 2)
    try d.submit(2, queue: 0)
    console.receive(Array("x".utf8))
    #expect(try d.lastUsed(queue: 0).index == 3)
    #expect(try d.memory.read(UInt8.self, at: 0x42_0000) == UInt8(ascii: "x"))
  }

  @Test func inputBeyondTheLimitIsDroppedAndCounted() throws {
    let (_, console, _) = try make()
    console.receive([UInt8](repeating: 0x41, count: VirtioConsole.maximumPending + 10))
    #expect(console.droppedInput == 10)
  }

  @Test func theEmergencyWriteRegisterOutputsAByte() throws {
    let (d, _, output) = try make()
    #expect(d.offeredFeatures & VirtioConsole.emergencyWrite != 0)
    #expect(d.bar(d.device + 4, 4) == 1, "one port")
    d.setBAR(d.device + 8, 4, UInt64(UInt8(ascii: "!")))
    #expect(output.text == "!")
  }

  @Test func aTransmitChainOutsideRAMBreaksTheQueue() throws {
    let (d, _, output) = try make()
    try d.descriptor(0, address: 0xFFFF_0000, length: 0x2_0000, flags: 0, table: d.descriptors + 0x1_0000)
    try d.submit(0, queue: 1)
    #expect(d.status & 0x40 != 0)
    #expect(output.bytes.isEmpty)
  }
}
