/// Loads a raw binary at `LoadOptions.flatAddress` and enters it at `flatEntry` (default: the load
/// address) in `flatMode`:
///
/// - `.real`: 16-bit real mode; CS:IP = (entry & ~0xFFFF) >> 4 : entry & 0xFFFF, DS = ES = SS =
///   FS = GS = 0, SP = 0x7C00. The entry must be below 1 MiB. No VMM structures are written.
/// - `.protected32`: flat 32-bit protected mode, paging off, as `ProtectedModeSetup`, ESP = 0x80000.
/// - `.long64`: long mode as `LongModeSetup`, RSP = 0x80000.
enum FlatLoader {
  static let realModeStack: UInt64 = 0x7C00

  static func load(_ bytes: [UInt8], into memory: GuestMemory, options: LoadOptions, address: UInt64)
    throws(LoaderError) -> BootState
  {
    guard !bytes.isEmpty else { throw LoaderError("flat binary is empty") }
    let entry = options.flatEntry ?? address
    let reserved: [(Range<UInt64>, String)]
    switch options.flatMode {
    case .real: reserved = []
    case .protected32: reserved = ProtectedModeSetup.reservedRanges
    case .long64: reserved = LongModeSetup.reservedRanges(for: memory)
    }
    var plan = LoadPlan(memory: memory, reserved: reserved + options.platformReservations)
    try plan.claim(address, length: UInt64(bytes.count), "flat binary")
    var registers = Registers()
    let sregs: SpecialRegisters
    switch options.flatMode {
    case .real:
      guard entry < 0x10_0000 else {
        throw LoaderError("real-mode entry point 0x\(hex(entry)) is not below 1 MiB")
      }
      var s = SpecialRegisters()
      let base = entry & ~0xFFFF
      s.cs = Segment(selector: UInt16(base >> 4), base: base, limit: 0xFFFF, type: 11)
      s.idt = DescriptorTable(base: 0, limit: 0x3FF)
      sregs = s
      registers.rip = entry & 0xFFFF
      registers.rsp = realModeStack
    case .protected32:
      guard entry <= UInt64(UInt32.max) else {
        throw LoaderError("32-bit entry point 0x\(hex(entry)) is above 4 GiB")
      }
      sregs = try ProtectedModeSetup.prepare(memory)
      registers.rip = entry
      registers.rsp = BootLayout.stackTop
    case .long64:
      let mappedEnd = LongModeSetup.mappedGiB(for: memory) << 30
      guard entry < mappedEnd else {
        throw LoaderError("entry point 0x\(hex(entry)) is beyond the boot identity map (0x\(hex(mappedEnd)))")
      }
      sregs = try LongModeSetup.prepare(memory)
      registers.rip = entry
      registers.rsp = BootLayout.stackTop
    }
    try guestWrite(memory, address, bytes, "the flat binary")
    return BootState(
      mode: options.flatMode, registers: registers, specialRegisters: sregs,
      summary: [
        "flat binary: \(bytes.count) bytes at 0x\(hex(address)), entry 0x\(hex(entry)) in \(options.flatMode.rawValue) mode"
      ])
  }
}
