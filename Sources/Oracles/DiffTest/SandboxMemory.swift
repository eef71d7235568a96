import CNative
import X86

/// The model's physical memory for a difftest: the code page and the sandbox at the same
/// addresses the native child uses. Everything else is "not RAM".
final class SandboxMemory: PhysicalMemory {
  let code = UnsafeMutableRawPointer.allocate(byteCount: Int(CN_CODE_SIZE), alignment: 4096)
  let sandbox = UnsafeMutableRawPointer.allocate(byteCount: Int(CN_SANDBOX_SIZE), alignment: 4096)

  deinit {
    code.deallocate()
    sandbox.deallocate()
  }

  /// Loads the code (the rest of the page is INT3, like the native side) and the sandbox.
  func load(code bytes: [UInt8], sandbox contents: [UInt8]) {
    code.initializeMemory(as: UInt8.self, repeating: 0xCC, count: Int(CN_CODE_SIZE))
    code.copyMemory(from: bytes, byteCount: min(bytes.count, Int(CN_CODE_MAX)))
    sandbox.copyMemory(from: contents, byteCount: min(contents.count, Int(CN_SANDBOX_SIZE)))
  }

  func sandboxBytes() -> [UInt8] {
    [UInt8](UnsafeRawBufferPointer(start: sandbox, count: Int(CN_SANDBOX_SIZE)))
  }

  func codeByte(at address: UInt64) -> UInt8? {
    guard address >= CN_CODE_ADDR, address < CN_CODE_ADDR + UInt64(CN_CODE_SIZE) else { return nil }
    return code.load(fromByteOffset: Int(address - CN_CODE_ADDR), as: UInt8.self)
  }

  func hostPointer(physical: UInt64, length: Int, write: Bool) -> UnsafeMutableRawPointer? {
    let end = physical &+ UInt64(length)
    if physical >= CN_CODE_ADDR && end <= CN_CODE_ADDR + UInt64(CN_CODE_SIZE) && end > physical {
      return code + Int(physical - CN_CODE_ADDR)
    }
    if physical >= CN_SANDBOX_ADDR && end <= CN_SANDBOX_ADDR + UInt64(CN_SANDBOX_SIZE) && end > physical {
      return sandbox + Int(physical - CN_SANDBOX_ADDR)
    }
    return nil
  }
}
