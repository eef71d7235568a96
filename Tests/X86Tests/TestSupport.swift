import X86

/// Flat test RAM at physical 0 implementing `PhysicalMemory`.
final class TestRAM: PhysicalMemory {
  let size: Int
  let bytes: UnsafeMutableRawPointer

  init(size: Int = 1 << 21) {
    self.size = size
    bytes = .allocate(byteCount: size, alignment: 4096)
    bytes.initializeMemory(as: UInt8.self, repeating: 0, count: size)
  }

  deinit { bytes.deallocate() }

  func hostPointer(physical: UInt64, length: Int, write: Bool) -> UnsafeMutableRawPointer? {
    guard physical + UInt64(length) <= UInt64(size) else { return nil }
    return bytes + Int(physical)
  }

  func load(_ data: [UInt8], at address: Int) {
    for (i, b) in data.enumerated() { bytes.storeBytes(of: b, toByteOffset: address + i, as: UInt8.self) }
  }

  func byte(_ address: Int) -> UInt8 { bytes.load(fromByteOffset: address, as: UInt8.self) }

  func word(_ address: Int) -> UInt16 { UInt16(byte(address)) | UInt16(byte(address + 1)) << 8 }

  func qword(_ address: Int) -> UInt64 { bytes.loadUnaligned(fromByteOffset: address, as: UInt64.self) }
}

/// A 64-bit flat-user CPU with `code` at 0x1000 and RSP = 0x8000.
func makeCPU64(_ code: [UInt8]) -> (CPU, TestRAM) {
  let ram = TestRAM()
  ram.load(code, at: 0x1000)
  let cpu = CPU(model: .host64, memory: ram)
  cpu.configureFlatUser64()
  cpu.state.rip = 0x1000
  cpu.state.setGPR(4, 0x8000)
  return (cpu, ram)
}

/// A real-mode CPU of `model` with `code` at 0000:0100 (CS=0), SS:SP = 0000:1000.
func makeCPUReal(_ model: CPUModel, _ code: [UInt8]) -> (CPU, TestRAM) {
  let ram = TestRAM()
  ram.load(code, at: 0x100)
  let cpu = CPU(model: model, memory: ram)
  cpu.resetReal(cs: 0, ip: 0x100)
  cpu.state.setGPR(4, 0x1000)
  return (cpu, ram)
}

enum Reg {
  static let rax = 0, rcx = 1, rdx = 2, rbx = 3, rsp = 4, rbp = 5, rsi = 6, rdi = 7
}
