import Testing

@testable import VMM

@Suite struct GuestMemoryTests {
  @Test func roundTripsAndBoundsChecks() throws {
    let m = try GuestMemory(ramSize: 1 << 20)
    try m.write(UInt32(0xDEAD_BEEF), at: 0x1000)
    #expect(try m.read(UInt32.self, at: 0x1000) == 0xDEAD_BEEF)
    #expect(throws: MemoryError.unbacked(address: 0xFFFFE, length: 4)) {
      try m.write(UInt32(1), at: 0xFFFFE)
    }
    #expect(throws: MemoryError.unbacked(address: UInt64.max, length: 1)) {
      _ = try m.read(UInt64.max, count: 1)
    }
  }

  @Test func rejectsAbsurdSizes() {
    #expect(throws: MemoryError.self) { try GuestMemory(ramSize: 0) }
    #expect(throws: MemoryError.self) { try GuestMemory(ramSize: 123) }
    #expect(throws: MemoryError.self) { try GuestMemory(ramSize: 1 << 50) }
  }

  @Test func splitsAroundTheMMIOHole() throws {
    let m = try GuestMemory(ramSize: 4 << 30)
    #expect(m.regions.count == 2)
    #expect(m.isBacked(0xBFFF_F000, length: 4096))
    #expect(!m.isBacked(0xC000_0000, length: 1))
    #expect(m.isBacked(0x1_0000_0000, length: 1 << 30))
  }

  @Test func romRefusesWrites() throws {
    let m = try GuestMemory(ramSize: 1 << 20)
    try m.addROM(at: 0xFFFF_0000, bytes: [0xEA, 0x5B, 0xE0])
    #expect(try m.read(UInt8.self, at: 0xFFFF_0000) == 0xEA)
    #expect(throws: MemoryError.readOnly(address: 0xFFFF_0000)) { try m.write(UInt8(0), at: 0xFFFF_0000) }
  }
}
