/// The general-purpose register file, RIP and RFLAGS (what `KVM_GET_REGS` returns).
public struct Registers: Sendable, Equatable, CustomStringConvertible {
  /// General registers (64-bit).
  public var rax: UInt64 = 0, rbx: UInt64 = 0, rcx: UInt64 = 0, rdx: UInt64 = 0
  /// General registers (64-bit).
  public var rsi: UInt64 = 0, rdi: UInt64 = 0, rsp: UInt64 = 0, rbp: UInt64 = 0
  /// General registers r8-r11.
  public var r8: UInt64 = 0, r9: UInt64 = 0, r10: UInt64 = 0, r11: UInt64 = 0
  /// General registers r12-r15.
  public var r12: UInt64 = 0, r13: UInt64 = 0, r14: UInt64 = 0, r15: UInt64 = 0
  /// The instruction pointer.
  public var rip: UInt64 = 0
  /// Bit 1 is always set on x86.
  public var rflags: UInt64 = 0x2

  /// All general registers and RIP zero.
  public init() {}

  /// General registers in encoding order: rax rcx rdx rbx rsp rbp rsi rdi r8..r15.
  public subscript(encoding index: Int) -> UInt64 {
    get {
      switch index {
      case 0: return rax
      case 1: return rcx
      case 2: return rdx
      case 3: return rbx
      case 4: return rsp
      case 5: return rbp
      case 6: return rsi
      case 7: return rdi
      case 8: return r8
      case 9: return r9
      case 10: return r10
      case 11: return r11
      case 12: return r12
      case 13: return r13
      case 14: return r14
      default: return r15
      }
    }
    set {
      switch index {
      case 0: rax = newValue
      case 1: rcx = newValue
      case 2: rdx = newValue
      case 3: rbx = newValue
      case 4: rsp = newValue
      case 5: rbp = newValue
      case 6: rsi = newValue
      case 7: rdi = newValue
      case 8: r8 = newValue
      case 9: r9 = newValue
      case 10: r10 = newValue
      case 11: r11 = newValue
      case 12: r12 = newValue
      case 13: r13 = newValue
      case 14: r14 = newValue
      default: r15 = newValue
      }
    }
  }

  /// The general registers' names in `description` order.
  public static let names = [
    "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
  ]

  /// The registers as lines for error reports.
  public var description: String {
    var lines: [String] = []
    for row in 0..<4 {
      lines.append(
        (0..<4).map { col in
          let i = row * 4 + col
          return (Registers.names[i] + "  ").prefix(3) + "=" + hex16(self[encoding: i])
        }.joined(separator: " "))
    }
    lines.append("rip=\(hex16(rip)) rflags=\(hex16(rflags))")
    return lines.joined(separator: "\n")
  }
}

/// A segment register in its hidden (descriptor-cache) form, as `kvm_segment` has it.
public struct Segment: Sendable, Equatable {
  /// The segment base (linear address).
  public var base: UInt64 = 0
  /// The limit in bytes (already scaled when G is set).
  public var limit: UInt32 = 0xFFFF
  /// The visible selector.
  public var selector: UInt16 = 0
  /// Descriptor type (4 bits), S, DPL, P, AVL, L, D/B, G, and the "unusable" flag.
  public var type: UInt8 = 3
  /// S: a code or data segment (false: a system segment such as a TSS or LDT).
  public var s: Bool = true
  /// Descriptor privilege level (0-3).
  public var dpl: UInt8 = 0
  /// P: the segment is present.
  public var present: Bool = true
  /// AVL: the bit available to software.
  public var avl: Bool = false
  /// L: a 64-bit code segment.
  public var l: Bool = false
  /// D/B: 32-bit default operand size (code) or 32-bit stack (SS).
  public var db: Bool = false
  /// G: the limit counts 4 KiB pages.
  public var g: Bool = false
  /// KVM's "unusable" flag: a null selector's cache.
  public var unusable: Bool = false
  /// A present, writable 16-bit data segment at base 0 with a 64 KiB limit (the real-mode reset shape).
  public init() {}
  /// A segment with the given selector, base, limit and attribute bits.
  public init(
    selector: UInt16, base: UInt64, limit: UInt32, type: UInt8, s: Bool = true, dpl: UInt8 = 0,
    present: Bool = true, l: Bool = false, db: Bool = false, g: Bool = false
  ) {
    self.selector = selector
    self.base = base
    self.limit = limit
    self.type = type
    self.s = s
    self.dpl = dpl
    self.present = present
    self.l = l
    self.db = db
    self.g = g
  }
}

/// A descriptor-table register (GDTR, IDTR).
public struct DescriptorTable: Sendable, Equatable {
  /// The table's linear address.
  public var base: UInt64 = 0
  /// The table's size in bytes, minus one.
  public var limit: UInt16 = 0xFFFF
  /// A table at `base` of `limit + 1` bytes.
  public init(base: UInt64 = 0, limit: UInt16 = 0xFFFF) {
    self.base = base
    self.limit = limit
  }
}

/// Segments, control registers and descriptor tables (what `KVM_GET_SREGS` returns).
/// The default value is the x86 reset state except CS, which the reset vector sets separately.
public struct SpecialRegisters: Sendable, Equatable, CustomStringConvertible {
  /// The segment registers' hidden caches.
  public var cs = Segment(), ds = Segment(), es = Segment(), fs = Segment(), gs = Segment(), ss = Segment()
  /// The task register (a busy 64-bit TSS by default).
  public var tr = Segment(selector: 0, base: 0, limit: 0xFFFF, type: 11, s: false)
  /// The LDT register.
  public var ldt = Segment(selector: 0, base: 0, limit: 0xFFFF, type: 2, s: false)
  /// GDTR.
  public var gdt = DescriptorTable()
  /// IDTR.
  public var idt = DescriptorTable()
  /// CR0 (reset value: CD, NW, ET).
  public var cr0: UInt64 = 0x6000_0010
  /// CR2: the last page-fault address.
  public var cr2: UInt64 = 0
  /// CR3: the page-table root.
  public var cr3: UInt64 = 0
  /// CR4.
  public var cr4: UInt64 = 0
  /// CR8: the task-priority register (64-bit mode).
  public var cr8: UInt64 = 0
  /// IA32_EFER (SCE, LME, LMA, NXE).
  public var efer: UInt64 = 0
  /// IA32_APIC_BASE (default: enabled at FEE00000H, bootstrap processor).
  public var apicBase: UInt64 = 0xFEE0_0900
  /// The reset values: real-mode segments, CR0 with CD/NW/ET, the APIC enabled at FEE00000H.
  public init() {}

  /// The registers as lines for error reports.
  public var description: String {
    func seg(_ n: String, _ s: Segment) -> String {
      "\(n)=\(hex4(s.selector)) base=\(hex16(s.base)) limit=\(String(s.limit, radix: 16)) type=\(s.type) dpl=\(s.dpl) l=\(s.l ? 1 : 0) db=\(s.db ? 1 : 0)"
    }
    return [
      seg("cs", cs), seg("ss", ss), seg("ds", ds), seg("es", es), seg("fs", fs), seg("gs", gs),
      seg("tr", tr),
      "gdt=\(hex16(gdt.base))/\(String(gdt.limit, radix: 16)) idt=\(hex16(idt.base))/\(String(idt.limit, radix: 16))",
      "cr0=\(hex16(cr0)) cr2=\(hex16(cr2)) cr3=\(hex16(cr3)) cr4=\(hex16(cr4)) efer=\(hex16(efer))",
    ].joined(separator: "\n")
  }
}

@inline(__always) func hex16(_ v: UInt64) -> String {
  let s = String(v, radix: 16)
  return String(repeating: "0", count: max(0, 16 - s.count)) + s
}
@inline(__always) func hex4(_ v: UInt16) -> String {
  let s = String(v, radix: 16)
  return String(repeating: "0", count: max(0, 4 - s.count)) + s
}
