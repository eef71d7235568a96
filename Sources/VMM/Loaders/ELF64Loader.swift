/// Loads a 64-bit x86 ELF executable (`ET_EXEC`, or `ET_DYN` at its link address) and starts it in
/// long mode.
///
/// Each `PT_LOAD` segment is copied to its physical address (`p_paddr`) and its BSS zeroed. The
/// entry point is `e_entry`, translated to a physical address when it lies in a segment linked at
/// a different virtual address. The vCPU starts as `LongModeSetup` documents, with
/// RSP = 0x80000 and RFLAGS = 0x2. When a command line is given it is written NUL-terminated at
/// 0x4000 and both RDI and RSI point at it (0 otherwise): RSI is the reference kernel's boot
/// contract (docs/guest-kernel.md, like Linux's RSI = boot parameters), RDI the first C argument.
enum ELF64Loader {
  static func load(_ bytes: [UInt8], into memory: GuestMemory, options: LoadOptions) throws(LoaderError)
    -> BootState
  {
    let image = ImageBytes(bytes, name: "ELF image")
    let elf = try ELFFile(image)
    guard elf.elfClass == .elf64 else {
      throw LoaderError("ELF image is 32-bit; a 64-bit kernel is expected (32-bit kernels need a Multiboot header)")
    }
    guard elf.machine == ELFFile.emX86_64 else {
      throw LoaderError("ELF image is for \(ELFFile.machineName(elf.machine)), expected x86-64 (EM_X86_64)")
    }
    var plan = LoadPlan(
      memory: memory, reserved: LongModeSetup.reservedRanges(for: memory) + options.platformReservations)
    if !options.commandLine.isEmpty {
      let length = UInt64(options.commandLine.utf8.count) + 1
      try plan.claim(
        BootLayout.commandLine.lowerBound, length: min(length, UInt64(BootLayout.commandLine.count)),
        "the command line")
    }
    let loaded = try elf.load(image, into: &plan, name: "ELF64 image")
    let entry = elf.physicalEntry
    try elf.requireEntryInSegment(entry, name: "ELF64")
    let mappedEnd = LongModeSetup.mappedGiB(for: memory) << 30
    guard entry < mappedEnd else {
      throw LoaderError("ELF64 entry point 0x\(hex(entry)) is beyond the boot identity map (0x\(hex(mappedEnd)))")
    }
    var registers = Registers()
    var summary = [loaded]
    if !options.commandLine.isEmpty {
      registers.rdi = try KernelCommandLine.write(options.commandLine, into: memory, limit: nil)
      registers.rsi = registers.rdi
      summary.append("command line at 0x\(hex(registers.rdi)) (in RDI and RSI)")
    }
    let sregs = try LongModeSetup.prepare(memory)
    registers.rip = entry
    registers.rsp = BootLayout.stackTop
    registers.rflags = 0x2
    summary.append("long mode: page tables at 0x\(hex(BootLayout.pml4)), RSP 0x\(hex(BootLayout.stackTop))")
    return BootState(mode: .long64, registers: registers, specialRegisters: sregs, summary: summary)
  }
}
