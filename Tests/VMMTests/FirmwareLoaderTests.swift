import TestHostSupport
import Testing

@testable import VMM

#if canImport(Glibc)
  import Glibc
#endif

@Suite struct FirmwareLoaderTests {
  @Test func mapsTheBIOSHighAndLow() throws {
    let m = try GuestMemory(ramSize: 16 << 20)
    var bios = [UInt8](repeating: 0, count: 256 << 10)
    bios[bios.count - 16] = 0xEA  // jmp far at the reset vector
    bios[bios.count - 0x20000] = 0x42  // first byte of the low window
    let boot = try FirmwareLoader.load(firmware: bios, into: m)
    #expect(boot.mode == .real)
    #expect(boot.registers.rip == 0xFFF0)
    #expect(boot.specialRegisters.cs.base == 0xFFFF_0000 && boot.specialRegisters.cs.selector == 0xF000)
    #expect(try m.read(UInt8.self, at: 0xFFFF_FFF0) == 0xEA)
    #expect(try m.read(UInt8.self, at: 0xF_FFF0) == 0xEA)
    #expect(try m.read(UInt8.self, at: 0xE_0000) == 0x42)
    #expect(throws: MemoryError.self) { try m.write(UInt8(0), at: 0xFFFF_FFF0) }
    try m.write(UInt8(1), at: 0xE_0000)  // the shadow copy is RAM
  }

  @Test func refusesBadImages() throws {
    let m = try GuestMemory(ramSize: 16 << 20)
    #expect(throws: LoaderError.self) { try FirmwareLoader.load(firmware: [], into: m) }
    #expect(throws: LoaderError.self) { try FirmwareLoader.load(firmware: [1, 2, 3], into: m) }
    #expect(throws: LoaderError.self) {
      try FirmwareLoader.load(firmware: [UInt8](repeating: 0, count: 32 << 20), into: m)
    }
    let tiny = try GuestMemory(ramSize: 512 << 10)
    #expect(throws: LoaderError.self) {
      try FirmwareLoader.load(firmware: [UInt8](repeating: 0, count: 64 << 10), into: tiny)
    }
  }
}

@Suite(.requires(.seabios)) struct SeaBIOSImageTests {
  @Test func mapsTheDistributionsSeaBIOS() throws {
    let path = "/usr/share/seabios/bios-256k.bin"
    let bios = try #require(readFile(path), "\(path) missing")
    let m = try GuestMemory(ramSize: 16 << 20)
    let boot = try FirmwareLoader.load(firmware: bios, into: m)
    #expect(boot.registers.rip == 0xFFF0)
    // SeaBIOS starts with a far jump at the reset vector, visible both high and low.
    #expect(try m.read(UInt8.self, at: 0xFFFF_FFF0) == 0xEA)
    #expect(try m.read(UInt8.self, at: 0xF_FFF0) == 0xEA)
  }

  func readFile(_ path: String) -> [UInt8]? {
    guard let f = fopen(path, "rb") else { return nil }
    defer { fclose(f) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
      let n = fread(&buffer, 1, buffer.count, f)
      if n <= 0 { break }
      out += buffer[0..<n]
    }
    return out
  }
}
