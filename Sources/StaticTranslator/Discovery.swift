import Translator
import VMM
import X86

/// Code discovery for static translation: recursive traversal over the decoder (the translator's
/// own front end, `GuestBlock.read`) from entry points (the image's entry, ELF function symbols).
/// It follows direct jumps, calls (and their return sites), both ways of conditional branches and
/// the fall-through after instructions that continue; it does not follow indirect jumps and calls
/// (it records them: their targets are left to the dynamic translator) and stops where the
/// decoder stops (bytes that do not decode: data), so data after a return or a jump is never
/// read as code.
package struct Discovery {
  /// What a traversal found.
  package struct Result {
    /// The blocks, by start RIP, in the order found.
    package var blocks: [GuestBlock] = []
    /// RIPs of indirect jumps and calls whose targets were not resolved.
    package var indirectSites: [UInt64] = []
    /// RIPs where traversal stopped: no instruction decodes there (data, or one crossing a
    /// page), or the address is outside guest RAM.
    package var stops: [UInt64] = []
  }

  /// Blocks traversal may find before it stops (a bound for huge or hostile images).
  package static let maximumBlocks = 200_000

  /// Traverses `mode` code from `entries`, reading it from `cpu`'s memory; `physical` maps a
  /// linear address to a physical one (nil: not mapped).
  package static func discover(
    cpu: CPU, entries: [UInt64], mode: TranslatedCodeMode, physical: (UInt64) -> UInt64?
  ) -> Result {
    var result = Result()
    var seen = Set<UInt64>()
    var work = entries.reversed().map { $0 }
    func wrap(_ a: UInt64) -> UInt64 { mode == .long64 ? a : a & 0xFFFF_FFFF }
    while let rip = work.popLast(), result.blocks.count < maximumBlocks {
      guard seen.insert(rip).inserted else { continue }
      guard let phys = physical(rip) else {
        result.stops.append(rip)
        continue
      }
      let block = GuestBlock.read(from: cpu, rip: rip, physical: phys, mode: mode)
      guard let last = block.instructions.last else {
        result.stops.append(rip)
        continue
      }
      result.blocks.append(block)
      var next: [UInt64] = []
      for g in block.instructions {
        let ins = g.instruction
        switch g.form {
        case .jcc, .jmpRel, .callRel:
          next.append(wrap(g.nextRIP &+ ins.immediate))
        default: break
        }
        if g.special == .jumpIndirect || g.special == .callIndirect { result.indirectSites.append(g.rip) }
      }
      if continuesAfter(last) { next.append(wrap(last.nextRIP)) }
      // Depth first, in the order the code names them.
      work.append(contentsOf: next.reversed())
    }
    return result
  }

  /// Whether control may reach the instruction after `g` (the last of a block).
  static func continuesAfter(_ g: GuestInstruction) -> Bool {
    switch g.form {
    case .jmpRel, .ret: return false
    case .generic:
      if g.special == .jumpIndirect { return false }
      switch g.instruction.operation {
      case .jmp, .ret, .iret, .sysret, .sysexit, .ud0, .ud1, .ud2, .invalid: return false
      default: return true
      }
    default: return true
    }
  }
}

/// The function symbols of a 64-bit ELF image and its loadable segments' virtual-to-physical
/// mapping, read with bounds checks (a malformed table gives fewer entries, never a crash).
package struct ELFCodeMap {
  /// Addresses of `STT_FUNC` symbols defined in the image.
  package var functionSymbols: [UInt64] = []
  /// PT_LOAD segments: virtual address, physical address, size in memory.
  package var segments: [(virtual: UInt64, physical: UInt64, size: UInt64)] = []

  /// Reads `image`; empty for anything but a little-endian ELF64.
  package init(_ image: [UInt8]) {
    guard image.count >= 64, image[0] == 0x7F, image[1] == 0x45, image[2] == 0x4C, image[3] == 0x46, image[4] == 2,
      image[5] == 1
    else { return }
    func u(_ at: Int, _ n: Int) -> UInt64? {
      guard at >= 0, n <= 8, at + n <= image.count else { return nil }
      var v: UInt64 = 0
      for k in 0..<n { v |= UInt64(image[at + k]) << (8 * UInt64(k)) }
      return v
    }
    if let phoff = u(0x20, 8), let phentsize = u(0x36, 2), let phnum = u(0x38, 2), phentsize >= 56,
      phoff < UInt64(image.count)
    {
      for i in 0..<Int(phnum) {
        let at = Int(phoff) + i * Int(phentsize)
        guard let type = u(at, 4), let vaddr = u(at + 16, 8), let paddr = u(at + 24, 8), let memsz = u(at + 40, 8)
        else { break }
        if type == 1 { segments.append((vaddr, paddr, memsz)) }
      }
    }
    guard let shoff = u(0x28, 8), let shentsize = u(0x3A, 2), let shnum = u(0x3C, 2), shentsize >= 64,
      shoff < UInt64(image.count)
    else { return }
    for i in 0..<Int(shnum) {
      let at = Int(shoff) + i * Int(shentsize)
      guard let type = u(at + 4, 4), let offset = u(at + 0x18, 8), let size = u(at + 0x20, 8) else { break }
      guard type == 2, offset < UInt64(image.count), size < UInt64(image.count) else { continue }  // SHT_SYMTAB
      for s in stride(from: Int(offset), to: Int(offset + size) - 23, by: 24) {
        guard let info = u(s + 4, 1), let shndx = u(s + 6, 2), let value = u(s + 8, 8) else { break }
        if info & 0xF == 2 && shndx != 0 && value != 0 { functionSymbols.append(value) }
      }
    }
  }

  /// The physical address of linear `a`: through the segment linked there, else the boot identity
  /// map.
  package func physical(_ a: UInt64) -> UInt64 {
    for s in segments where a >= s.virtual && a - s.virtual < s.size { return s.physical &+ (a - s.virtual) }
    return a
  }
}
