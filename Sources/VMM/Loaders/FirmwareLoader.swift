/// Maps a PC BIOS image (SeaBIOS's bios.bin) the way a PC chipset decodes it and returns the
/// x86 reset state.
///
/// The whole image becomes read-only memory ending at 4 GiB (`[4 GiB - size, 4 GiB)`, in the MMIO
/// hole), and its last 128 KiB (or all of it, if smaller) is copied into RAM at
/// `[1 MiB - 128 KiB, 1 MiB)`, where real-mode code sees the BIOS. That low copy is plain RAM:
/// it behaves as if the 440FX PAM registers had already made the shadow area writable, which is
/// what SeaBIOS does first anyway.
///
/// Loading again into the same memory (a reboot) refreshes the ROM and the low copy.
///
/// Reset state: real mode, CS = 0xF000 with base 0xFFFF0000, IP = 0xFFF0 (the reset vector in
/// the high ROM copy), EDX = 0x600 (a family-6 CPU signature), everything else as after RESET.
public enum FirmwareLoader {
  /// Largest BIOS image accepted (the flash size of common chipsets).
  public static let maximumSize = 16 << 20
  /// How much of the image's end appears below 1 MiB.
  public static let lowWindow = 128 << 10

  /// Maps `firmware` as ROM below 4 GiB and its last 128 KiB below 1 MiB, and returns the reset-vector start
  /// state; throws for an empty, oversized or misaligned image, or less than 1 MiB of guest RAM.
  public static func load(firmware: [UInt8], into memory: GuestMemory) throws(LoaderError) -> BootState {
    guard !firmware.isEmpty else { throw LoaderError("firmware image is empty") }
    guard firmware.count <= maximumSize else {
      throw LoaderError("firmware image is \(firmware.count) bytes; at most \(maximumSize) are supported")
    }
    guard firmware.count % 4096 == 0 else {
      throw LoaderError("firmware image size \(firmware.count) is not a multiple of 4 KiB")
    }
    guard let low = memory.region(containing: 0, length: 0x10_0000), low.kind == .ram else {
      throw LoaderError("firmware needs at least 1 MiB of guest RAM")
    }
    let size = UInt64(firmware.count)
    let base = GuestMemory.mmioHoleEnd - size
    do throws(MemoryError) { try memory.loadROM(at: base, bytes: firmware) } catch {
      throw LoaderError("cannot map the firmware at 0x\(hex(base)): \(error)")
    }
    let window = min(firmware.count, lowWindow)
    let lowBase = UInt64(0x10_0000 - window)
    try guestWrite(memory, lowBase, firmware[(firmware.count - window)...], "the firmware's low copy")

    var sregs = SpecialRegisters()
    sregs.cs = Segment(selector: 0xF000, base: 0xFFFF_0000, limit: 0xFFFF, type: 11)
    sregs.idt = DescriptorTable(base: 0, limit: 0x3FF)
    var registers = Registers()
    registers.rip = 0xFFF0
    registers.rdx = 0x600
    return BootState(
      mode: .real, registers: registers, specialRegisters: sregs,
      summary: [
        "firmware: \(firmware.count) bytes at 0x\(hex(base))-0xffffffff, last \(window >> 10) KiB at 0x\(hex(lowBase))",
        "reset vector F000:FFF0",
      ])
  }
}
